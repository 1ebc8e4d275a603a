"""The end of a fine-tune: the new version written next to its parent, its lineage, and the promotion gate.

The parent is never overwritten: the result is always a NEW version, written atomically (by
`save_checkpoint`), so the library holds either the complete new version or nothing new. It becomes the
active model only if it scores at least as well as its parent on the same validation split.
"""
from __future__ import annotations

import dataclasses
import shutil
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from torch import nn

from segstudio.core import paths
from segstudio.core.words import count
from segstudio.engine.training.config import TrainConfig
from segstudio.engine.training.errors import TrainingError

# What a saved version takes beyond its weights (metadata, lineage), and room left for the rest of the disk.
_SAVE_MARGIN_BYTES = 16 * 2**20


def checkpoint_bytes(model: nn.Module) -> int:
    """About what the new version's file will take: its weights as they are stored, plus the metadata."""
    return sum(t.numel() * t.element_size() for t in model.state_dict().values()) + _SAVE_MARGIN_BYTES


def check_room_to_save(folder: Path, model: nn.Module) -> None:
    """Refuse, before any training, a run whose result could not be written where the library keeps it."""
    problem = paths.folder_problem(Path(folder))
    if problem:
        raise TrainingError(f"The new version could not be saved: {problem}. Nothing was trained.")
    # The temp file and the finished file exist together for a moment while the version is written.
    needed = 2 * checkpoint_bytes(model)
    try:
        free = shutil.disk_usage(folder).free
    except OSError as exc:
        raise TrainingError(f"The new version could not be saved in {folder}: {exc.strerror or exc}") from exc
    if free < needed:
        raise TrainingError(f"The new version could not be saved: {folder} has {free / 2**20:.0f} MB free and "
                            f"saving it needs about {needed / 2**20:.0f} MB. Nothing was trained.")


def should_promote(parent_metrics: dict | None, child_metrics: dict | None, *, force: bool = False) -> bool:
    """The promotion gate: the child's mean IoU is at least the parent's (or the parent has none)."""
    parent_iou = parent_metrics.get("mean_iou") if parent_metrics else None
    child_iou = child_metrics.get("mean_iou") if child_metrics else None
    better = child_iou is not None and (parent_iou is None or child_iou >= parent_iou)
    return bool(force or better)


@dataclass
class RunRecord:
    """What the lineage records about a finished run (beyond the config)."""

    name: str                  # family of the new version
    classes: list[dict]
    datasets: list[dict]       # per folder: path, manifest_hash, entries
    val_source: str
    train_images: int
    val_images: int
    steps: int
    epochs: int
    batch: int                 # after any out-of-memory reduction
    crop: int
    world_size: int
    device: str
    notes: list[str]
    parent_metrics: dict | None
    child_metrics: dict | None
    started: float             # time.perf_counter() at the start of the run


def classes_for_outputs(dataset_classes: list[dict], parent_classes: list[dict], outputs: int) -> list[dict]:
    """The new version's class list: one entry per output, in output order (output i predicts class id i).

    Names and colours come from the datasets (the user's latest table), else from the parent. Ids the
    datasets list beyond the outputs are not listed: training already refused masks that use them, so
    they name nothing the model predicts.
    """
    by_id = {int(c["id"]): dict(c) for c in parent_classes if isinstance(c, dict) and "id" in c}
    by_id.update({int(c["id"]): dict(c) for c in dataset_classes})
    if not by_id:
        return []
    return [by_id.get(i, {"id": i, "name": f"class {i}", "color": [128, 128, 128]}) for i in range(outputs)]


def child_meta(parent_meta, version: int, config: TrainConfig, record: RunRecord):
    """The new version's metadata: the parent's, with its own name, version, lineage and scores."""
    settings = config.settings()
    settings.update({"effective_batch_size": record.batch, "effective_crop": record.crop,
                     "world_size": record.world_size})
    return dataclasses.replace(
        parent_meta,
        name=record.name,
        version=int(version),
        classes=classes_for_outputs(record.classes, parent_meta.classes,
                                    parent_meta.class_count),
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        parent=parent_meta.id,
        training={
            "datasets": record.datasets,
            "val_source": record.val_source,
            "settings": settings,
            "steps": record.steps,
            "epochs": record.epochs,
            "train_images": record.train_images,
            "val_images": record.val_images,
            "notes": record.notes,
            "device": record.device,
            "duration_s": round(time.perf_counter() - record.started, 2),
        },
        metrics={"val": record.child_metrics, "parent_val": record.parent_metrics},
        description=f"Fine-tuned from {parent_meta.id} on {count(record.train_images, 'image')}",
    )


def release(library, model: nn.Module, parent_meta, config: TrainConfig, record: RunRecord):
    """Write the new version and apply the promotion gate; returns (its metadata, path, promoted)."""
    from segstudio.models.checkpoint import save_checkpoint

    promote = should_promote(record.parent_metrics, record.child_metrics, force=config.force_promote)
    path, version = library.next_version_path(record.name)
    path = Path(path)
    if path.exists():
        raise TrainingError(f"The model library already has {path}; refusing to overwrite it")
    meta = child_meta(parent_meta, version, config, record)
    model.to("cpu")
    model.eval()
    for p in model.parameters():
        p.requires_grad_(True)  # a frozen encoder is a training choice, not a property of the new version
    save_checkpoint(path, model, meta)
    if promote:
        library.set_active(meta.id)
    return meta, path, promote
