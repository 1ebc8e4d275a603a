"""Before a fine-tune starts: do the datasets' classes fit the model, and if not, can the model grow?

Torch-free and quick (the manifests record which class ids each mask uses; a mask is read only when an
older manifest does not say), so the window asks before it starts a training process: a class the model
lacks is offered as "extend the model", and a mask using an id that no class table names is refused at
once, with the image's file name, instead of minutes later from inside the run.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class ClassCheck:
    missing: list[dict] = field(default_factory=list)  # dataset classes beyond the model's outputs
    refused: str = ""                                    # why the model cannot be extended to fit; "" if it can

    @property
    def fits(self) -> bool:
        return not self.missing and not self.refused

    def describe_missing(self) -> str:
        return ", ".join(f"{c['name']} (id {c['id']})" for c in self.missing)


def entry_name(folder: Path, entry: dict) -> str:
    """How messages name a dataset entry: the image file the user exported, not the folder's hash name."""
    source = entry.get("source")
    if isinstance(source, str) and source and not source.startswith("synthetic:"):
        return f"{source} (in dataset {folder})"
    return f"{entry.get('image', entry.get('id'))} in dataset {folder}"


def _used_ids(folder: Path, entry: dict) -> set[int]:
    pixels = entry.get("class_pixels")
    if isinstance(pixels, dict):
        return {int(k) for k, v in pixels.items() if int(v) > 0}
    import numpy as np

    from segstudio.core import dataset_checks
    from segstudio.core.storage import load_mask_png

    mask = load_mask_png(dataset_checks.regular_file(folder, entry["mask"]))
    return {int(i) for i in np.unique(mask)}


def check_dataset_classes(folders: Sequence[str | Path], num_classes: int) -> ClassCheck:
    """Compare the classes the datasets' masks use with a model predicting class ids 0..num_classes-1."""
    from segstudio.core.dataset import load_manifest

    check = ClassCheck()
    named: dict[int, dict] = {}
    for folder in map(Path, folders):
        try:
            manifest = load_manifest(folder)
        except Exception:  # noqa: BLE001 - the run reports unreadable datasets in its own words
            continue
        table = {int(c["id"]): dict(c) for c in manifest.get("classes", []) if isinstance(c, dict) and "id" in c}
        named.update(table)
        for entry in manifest.get("entries", []):
            try:
                used = _used_ids(folder, entry)
            except Exception:  # noqa: BLE001 - as above: an unreadable mask is the run's to report
                continue
            unnamed = sorted(i for i in used if i >= num_classes and i not in table)
            if unnamed and not check.refused:
                check.refused = (f"The mask of {entry_name(folder, entry)} uses class id {unnamed[0]}, which no "
                                 f"class in its dataset names, and the model predicts only {num_classes} classes")
            for class_id in used:
                if class_id >= num_classes and class_id in table:
                    named.setdefault(class_id, table[class_id])
                    if all(c["id"] != class_id for c in check.missing):
                        check.missing.append(table[class_id])
    check.missing.sort(key=lambda c: c["id"])
    return check
