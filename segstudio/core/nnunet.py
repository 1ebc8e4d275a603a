"""Export a segstudio dataset folder in nnU-Net v2's raw layout (``nnUNet_raw/Dataset<id>_<name>``).

Choices, all made so nnU-Net reads the result with its 2D natural-image reader (NaturalImage2DIO):

* every channel is its own grey file ``imagesTr/<case>_<k:04d><ending>`` (also for RGB): nnU-Net stacks the
  files as channels, and this keeps 16-bit data intact, which an RGB PNG could not;
* ``file_ending`` is ``.png`` when all images are uint8/uint16 (lossless, what the reader expects for 2D);
  other dtypes (float, int16, uint32) are written as 2D ``.tif`` planes instead, labels included, since
  nnU-Net needs one ending for images and labels;
* case identifiers are segstudio entry ids (content hashes), stable across re-exports;
* label values are renumbered 0..K-1 in class-id order because nnU-Net requires consecutive labels;
  ``labels`` maps each class name to its new value (background 0);
* channel names are descriptive ("intensity", "R"/"G"/"B", "channel_<k>"); nnU-Net z-scores each channel
  per image for such names, which suits fluorescence;
* ``splits_final.json`` holds segstudio's fixed train/val split as a single fold; copy it into
  ``nnUNet_preprocessed/Dataset<id>_<name>/`` to train fold 0 on the same split;
* the hand-painted maps have no nnU-Net counterpart and are not exported.

Files from an earlier export of cases no longer in the dataset are removed from imagesTr/labelsTr.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from segstudio.core.dataset import DatasetError, load_entry, load_manifest
from segstudio.core.dataset_codecs import EncodingError, encode_png, encode_tif
from segstudio.core.storage import atomic_write_bytes, atomic_write_json

_NNUNET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


@dataclass(frozen=True)
class _LabelMap:
    """Class ids renumbered 0..K-1 as nnU-Net requires, and the names it keys them by."""

    lut: np.ndarray  # class id -> nnU-Net label value
    labels: dict[str, int]
    dtype: type


def export_nnunet(dataset_dir: str | Path, out_root: str | Path, *, dataset_id: int = 501,
                  name: str = "segstudio") -> Path:
    """Write the dataset in nnU-Net v2's raw layout; returns ``out_root/Dataset<id>_<name>``."""
    root = Path(dataset_dir)
    manifest = load_manifest(root)
    entries = manifest["entries"]
    n_channels = _checked_request(root, entries, dataset_id, name)
    ending = ".png" if all(e["dtype"] in ("uint8", "uint16") for e in entries) else ".tif"
    encode = encode_png if ending == ".png" else encode_tif
    label_map = _label_map(manifest["classes"])

    out = Path(out_root) / f"Dataset{dataset_id:03d}_{name}"
    images_dir, labels_dir = out / "imagesTr", out / "labelsTr"
    images_dir.mkdir(parents=True, exist_ok=True)
    labels_dir.mkdir(parents=True, exist_ok=True)
    written: set[str] = set()
    for entry in entries:
        written |= _write_case(root, entry, images_dir, labels_dir, n_channels, ending, encode, label_map)
    _remove_stale_cases((images_dir, labels_dir), written)

    atomic_write_json(out / "splits_final.json", [{
        "train": [e["id"] for e in entries if e["split"] == "train"],
        "val": [e["id"] for e in entries if e["split"] == "val"],
    }])
    atomic_write_json(out / "dataset.json", {
        "channel_names": _channel_names(entries, n_channels),
        "labels": label_map.labels,
        "numTraining": len(entries),
        "file_ending": ending,
        "overwrite_image_reader_writer": "NaturalImage2DIO",
        "name": name,
        "description": f"Exported by segstudio from {root.resolve()}",
        "licence": "as the source images",
    })
    return out


def _checked_request(root: Path, entries: list[dict], dataset_id: int, name: str) -> int:
    """The one channel count of every image, after checking what nnU-Net requires of the request."""
    if not entries:
        raise DatasetError(f"{root} has no entries to export")
    if not (isinstance(dataset_id, int) and 1 <= dataset_id <= 999):
        raise DatasetError(f"nnU-Net dataset ids have three digits (1..999), not {dataset_id!r}")
    if not _NNUNET_NAME.match(name):
        raise DatasetError(f"nnU-Net dataset name {name!r} may hold only letters, digits, '_' and '-'")
    channels = {e["channels"] for e in entries}
    if len(channels) != 1:
        raise DatasetError(f"nnU-Net needs the same number of channels in every image; {root} mixes "
                           f"{sorted(channels)}")
    return channels.pop()


def _label_map(classes: list[dict]) -> _LabelMap:
    class_ids = sorted(int(c["id"]) for c in classes)
    if 0 not in class_ids:
        class_ids.insert(0, 0)
    names_by_id = {int(c["id"]): str(c["name"]) for c in classes}
    lut = np.zeros(max(class_ids) + 1, dtype=np.uint16)
    labels: dict[str, int] = {}
    for new, cid in enumerate(class_ids):
        lut[cid] = new
        label_name = names_by_id[cid] if cid else "background"
        if label_name in labels:  # nnU-Net keys labels by name: keep both classes apart
            label_name = f"{label_name}_{cid}"
        labels[label_name] = new
    return _LabelMap(lut, labels, np.uint8 if len(class_ids) <= 256 else np.uint16)


def _write_case(root: Path, entry: dict, images_dir: Path, labels_dir: Path, n_channels: int, ending: str,
                encode: Callable[[np.ndarray], bytes], label_map: _LabelMap) -> set[str]:
    """Write one entry's channel planes and its renumbered labels; returns the files written."""
    pixels, mask, _ = load_entry(root, entry, check_pixels_hash=True)
    case = entry["id"]
    written = set()
    for k in range(n_channels):
        fname = f"{case}_{k:04d}{ending}"
        atomic_write_bytes(images_dir / fname, _encoded(encode, pixels[:, :, k]))
        written.add(f"imagesTr/{fname}")
    if int(mask.max(initial=0)) >= label_map.lut.size:
        raise DatasetError(f"{root / entry['mask']} holds class id {int(mask.max())}, which the manifest "
                           f"does not list")
    atomic_write_bytes(labels_dir / f"{case}{ending}", _encoded(encode, label_map.lut[mask].astype(label_map.dtype)))
    written.add(f"labelsTr/{case}{ending}")
    return written


def _remove_stale_cases(folders: tuple[Path, ...], written: set[str]) -> None:
    for folder in folders:
        for path in folder.iterdir():
            rel = f"{folder.name}/{path.name}"
            if path.is_file() and path.suffix.lower() in (".png", ".tif", ".tiff") and rel not in written:
                path.unlink()


def _encoded(encode: Callable[[np.ndarray], bytes], plane: np.ndarray) -> bytes:
    try:
        return encode(plane)
    except EncodingError as exc:
        raise DatasetError(str(exc)) from None


def _channel_names(entries: list[dict], channels: int) -> dict[str, str]:
    stored = entries[0].get("channel_names")
    if isinstance(stored, list) and len(stored) == channels:
        return {str(k): str(v) for k, v in enumerate(stored)}
    if channels == 1:
        return {"0": "intensity"}
    if channels == 3 and all(e["dtype"] == "uint8" for e in entries):
        return {"0": "R", "1": "G", "2": "B"}
    return {str(k): f"channel_{k}" for k in range(channels)}
