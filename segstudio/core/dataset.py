"""Dataset folders: where Export puts corrected masks and what training reads.

Layout of a dataset folder::

    <dir>/dataset.json        manifest (below); written last, atomically, so it never names a missing file
    <dir>/images/<id>.tif     source pixels, lossless (zlib), original dtype, (H, W) or (H, W, C)
    <dir>/masks/<id>.png      index mask (uint8, or uint16 when a class id exceeds 255)
    <dir>/hand/<id>.png       uint8 0/1: pixels the user painted by hand

``<id>`` is the first 16 hex digits of the content hash (:func:`content_hash`) of the source pixels, so an
entry is identified by what the image contains, not by where it was found:

* exporting the same image again replaces its entry (new mask, hand map, model version, timestamp);
* exporting a file whose pixels changed since the last export replaces the entry of that source path;
* identical pixels read from two files are one entry (the last export's path is kept as its source);
* the train/val split is a function of the content hash (``val`` when ``int(sha256[:8], 16) % 5 == 0``), so
  an image never moves between train and val as the dataset grows, and validation scores stay comparable
  between model versions.

Manifest (``dataset.json``)::

    {"format": "segstudio-dataset", "version": 1,
     "classes": [{"id": 0, "name": "background", "color": [0, 0, 0]}, ...],
     "entries": [{"id", "image", "mask", "hand", "source", "sha256", "model_version", "hand_fraction", "split",
                  "height", "width", "channels", "dtype", "updated",
                  "mask_sha256", "hand_sha256", "class_pixels", "channel_names" (when known)}]}

The last entry fields are additions: content hashes of the mask and hand map (so :func:`manifest_hash`
changes exactly when the training data changes, without reading the files) and per-class pixel counts
(``{"<id>": count}``, for class weighting); channel names are kept when the reader knew them.

When a dataset's class table and an export's differ, the export's names and colours win for the ids it has
(a rename reaches the whole dataset). An id only the dataset has is kept while the mask of an entry still
uses it (its ``class_pixels``, or an older entry that does not record them) and dropped otherwise, so a
class the user removed does not come back through the dataset into the next fine-tuned model.

The module also writes the nnU-Net v2 "raw" layout (:func:`export_nnunet`) so the same corrections can train
an nnU-Net baseline.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from io import BytesIO
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import cv2
import numpy as np
import tifffile

from segstudio.core.labels import ClassTable
from segstudio.core.storage import atomic_write_bytes, atomic_write_json, load_mask_png, save_mask_png

FORMAT = "segstudio-dataset"
VERSION = 1
MANIFEST = "dataset.json"


class DatasetError(ValueError):
    """A dataset folder or an export request is not usable; the message names the file and the reason."""


@dataclass
class ExportItem:
    """One image to export. ``pixels`` (H, W) or (H, W, C) in the source dtype; ``mask`` (H, W) class ids;
    ``hand`` (H, W) bool or None (nothing painted by hand); ``source`` the absolute path of the source file,
    or any stable name for data that has no file (e.g. ``synthetic:...``); ``classes`` the item's own class
    table when it differs from the one passed to :func:`export_many`."""

    pixels: np.ndarray
    mask: np.ndarray
    source: str
    hand: np.ndarray | None = None
    model_version: str | None = None
    channel_names: tuple[str, ...] | None = None
    classes: ClassTable | None = None


# --- hashing -----------------------------------------------------------------------------------------------

def _as_hwc(pixels: np.ndarray) -> np.ndarray:
    arr = np.asarray(pixels)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3:
        raise DatasetError(f"image pixels must be (H, W) or (H, W, C), got shape {arr.shape}")
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    if arr.dtype.kind not in "uif":
        raise DatasetError(f"image pixels must be numeric, got dtype {arr.dtype}")
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    return arr


def content_hash(pixels: np.ndarray) -> str:
    """SHA-256 (hex) of an image's pixels, shape (as H, W, C) and dtype name.

    (H, W) and (H, W, 1) give the same hash, and so do byte-swapped copies of the same values: the hash is
    about content, not about how a reader happened to return it.
    """
    arr = np.ascontiguousarray(_as_hwc(pixels))
    h = hashlib.sha256()
    h.update(memoryview(arr).cast("B"))
    h.update(repr(tuple(int(s) for s in arr.shape)).encode())
    h.update(arr.dtype.name.encode())
    return h.hexdigest()


def _array_hash(arr: np.ndarray) -> str:
    arr = np.ascontiguousarray(arr)
    h = hashlib.sha256()
    h.update(memoryview(arr).cast("B"))
    h.update(repr(arr.shape).encode())
    h.update(arr.dtype.name.encode())
    return h.hexdigest()


def split_for(sha256: str) -> str:
    """The fixed split of an image: one in five hashes (uniformly spread) goes to validation."""
    return "val" if int(sha256[:8], 16) % 5 == 0 else "train"


# --- manifest ----------------------------------------------------------------------------------------------

def _empty_manifest() -> dict:
    # The first export's class table fills "classes".
    return {"format": FORMAT, "version": VERSION, "classes": [], "entries": []}


def load_manifest(dataset_dir: str | Path) -> dict:
    """The manifest of a dataset folder. FileNotFoundError if the folder has none; DatasetError if it is not
    a segstudio dataset, is damaged, or was written by a newer version."""
    path = Path(dataset_dir) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{Path(dataset_dir)} is not a segstudio dataset: it has no {MANIFEST}")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"Cannot read {path}: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise DatasetError(f"{path} is not a segstudio dataset manifest (format is not {FORMAT!r})")
    version = manifest.get("version")
    if not isinstance(version, int) or version > VERSION:
        raise DatasetError(f"{path} has version {version!r}; this segstudio reads version {VERSION} or older")
    if not isinstance(manifest.get("entries"), list) or not isinstance(manifest.get("classes"), list):
        raise DatasetError(f"{path} is damaged: 'entries' and 'classes' must be lists")
    return manifest


def load_classes(dataset_dir: str | Path) -> ClassTable:
    """The class table stored in a dataset's manifest."""
    return ClassTable.from_list(load_manifest(dataset_dir)["classes"])


def manifest_hash(dataset_dir: str | Path) -> str:
    """A SHA-256 that changes exactly when the training data changes: the class table, the set of images,
    their masks, hand maps and splits. Timestamps, source paths and entry order do not count, so re-exporting
    an unchanged mask keeps the hash (a model's record of what it was trained on stays valid)."""
    root = Path(dataset_dir)
    manifest = load_manifest(root)
    rows = []
    for e in sorted(manifest["entries"], key=lambda e: e["id"]):
        mask_sha = e.get("mask_sha256") or _file_sha(root / e["mask"])
        hand_sha = e.get("hand_sha256") or _file_sha(root / e["hand"])
        rows.append([e["id"], e["sha256"], mask_sha, hand_sha, e["split"]])
    classes = sorted(([c["id"], c["name"]] for c in manifest["classes"]), key=lambda c: c[0])
    blob = json.dumps({"classes": classes, "entries": rows}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def _file_sha(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        raise DatasetError(f"Cannot read {path}: {exc.strerror or exc}") from exc


def _merge_classes(existing: list[dict], incoming: list[dict]) -> list[dict]:
    merged = {int(c["id"]): dict(c) for c in existing}
    order = [int(c["id"]) for c in existing]
    for c in incoming:
        cid = int(c["id"])
        if cid not in merged:
            order.append(cid)
        merged[cid] = dict(c)
    return [merged[cid] for cid in order]


def _classes_still_used(merged: list[dict], exported: set[int], entries: list[dict]) -> list[dict]:
    """`merged` without the ids that neither this export's tables nor any remaining entry's mask use."""
    used: set[int] = set()
    for entry in entries:
        pixels = entry.get("class_pixels")
        if not isinstance(pixels, dict):  # written before class_pixels existed: any id may be in use
            return merged
        used.update(int(k) for k in pixels)
    return [c for c in merged if int(c["id"]) in used | exported | {0}]


# --- export ------------------------------------------------------------------------------------------------

def _tiff_bytes(pixels_hwc: np.ndarray) -> bytes:
    c = pixels_hwc.shape[2]
    buf = BytesIO()
    if c == 1:
        tifffile.imwrite(buf, pixels_hwc[:, :, 0], photometric="minisblack", compression="zlib")
    elif c == 3 and pixels_hwc.dtype in (np.uint8, np.uint16):
        tifffile.imwrite(buf, pixels_hwc, photometric="rgb", compression="zlib")
    else:
        tifffile.imwrite(buf, pixels_hwc, photometric="minisblack", planarconfig="contig", compression="zlib")
    return buf.getvalue()


def _check_mask(mask: np.ndarray, shape_hw: tuple[int, int], classes: ClassTable) -> tuple[np.ndarray, dict]:
    mask = np.asarray(mask)
    if mask.ndim == 3 and mask.shape[2] == 1:
        mask = mask[:, :, 0]
    if mask.shape != shape_hw:
        raise DatasetError(f"mask shape {mask.shape} does not match the image ({shape_hw[0]} x {shape_hw[1]})")
    if mask.dtype.kind not in "uib":
        raise DatasetError(f"mask must hold integer class ids, got dtype {mask.dtype}")
    if mask.size and (int(mask.min()) < 0 or int(mask.max()) > 65535):
        raise DatasetError("mask class ids must lie in 0..65535")
    out_dtype = np.uint16 if (mask.size and int(mask.max()) > 255) or classes.mask_dtype == np.uint16 else np.uint8
    mask = np.ascontiguousarray(mask.astype(out_dtype, copy=False))
    # A histogram instead of np.unique: linear time and no sorted copy of a gigapixel mask.
    bins = 256 if out_dtype == np.uint8 else 65536
    counts = cv2.calcHist([mask], [0], None, [bins], [0, bins]).ravel()
    present = {int(i): int(counts[i]) for i in np.flatnonzero(counts)}
    unknown = sorted(set(present) - set(int(i) for i in classes.ids()))
    if unknown:
        raise DatasetError(f"mask contains class ids {unknown} that are not in the class table "
                           f"(known ids: {sorted(int(i) for i in classes.ids())})")
    return mask, present


def _entry_paths(entry_id: str) -> dict:
    return {"image": f"images/{entry_id}.tif", "mask": f"masks/{entry_id}.png", "hand": f"hand/{entry_id}.png"}


def _write_item(root: Path, item: ExportItem, classes: ClassTable) -> dict:
    pixels = _as_hwc(item.pixels)
    h, w, c = pixels.shape
    mask, class_pixels = _check_mask(item.mask, (h, w), classes)
    if item.hand is None:
        hand = np.zeros((h, w), dtype=np.uint8)
    else:
        hand = np.asarray(item.hand)
        if hand.shape != (h, w):
            raise DatasetError(f"hand map shape {hand.shape} does not match the image ({h} x {w})")
        hand = (hand != 0).astype(np.uint8)
    sha = content_hash(pixels)
    entry_id = sha[:16]
    paths = _entry_paths(entry_id)
    image_path = root / paths["image"]
    # Same id means same pixels: an existing image file is already right, and skipping it keeps re-exporting a
    # large slide cheap.
    if not image_path.is_file():
        atomic_write_bytes(image_path, _tiff_bytes(pixels))
    save_mask_png(root / paths["mask"], mask)
    save_mask_png(root / paths["hand"], hand)
    return {
        "id": entry_id, **paths,
        "source": str(item.source),
        "sha256": sha,
        "model_version": item.model_version,
        "hand_fraction": float(hand.mean()) if hand.size else 0.0,
        "split": split_for(sha),
        "height": int(h), "width": int(w), "channels": int(c), "dtype": pixels.dtype.name,
        "updated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "mask_sha256": _array_hash(mask),
        "hand_sha256": _array_hash(hand),
        "class_pixels": {str(k): v for k, v in sorted(class_pixels.items())},
        **({"channel_names": list(item.channel_names)} if item.channel_names else {}),
    }


def export_many(dataset_dir: str | Path, items: Iterable[ExportItem], classes: ClassTable, *,
                on_error: Callable[[ExportItem, DatasetError], None] | None = None) -> list[dict]:
    """Export several images in one go (the manifest is written once, at the end). Returns their entries.

    Files are written (atomically) before the manifest, and files of replaced entries are removed only after
    it, so an interrupted export leaves at worst unreferenced files, never an entry without its files.
    Items are consumed one at a time, so a generator keeps memory bounded. Without ``on_error`` the first
    unusable item raises DatasetError and the manifest is left as it was; with it, the item is reported
    there and skipped, and the others are exported.
    """
    root = Path(dataset_dir)
    try:
        manifest = load_manifest(root)
    except FileNotFoundError:
        manifest = _empty_manifest()
    for sub in ("images", "masks", "hand"):
        (root / sub).mkdir(parents=True, exist_ok=True)

    by_id: dict[str, dict] = {e["id"]: e for e in manifest["entries"]}
    written: list[dict] = []
    merged_classes = manifest["classes"]
    exported_ids: set[int] = set()
    for item in items:
        table = item.classes or classes
        try:
            entry = _write_item(root, item, table)
        except DatasetError as exc:
            if on_error is None:
                raise
            on_error(item, exc)
            continue
        except OSError as exc:
            if on_error is None:
                raise
            on_error(item, DatasetError(f"Cannot write into {root}: {exc.strerror or exc}"))
            continue
        merged_classes = _merge_classes(merged_classes, table.to_list())
        exported_ids.update(table.ids())
        # A changed file replaces the entry of its old content; identical pixels are one entry.
        for old_id in [i for i, e in by_id.items() if e.get("source") == entry["source"] and i != entry["id"]]:
            del by_id[old_id]
        by_id[entry["id"]] = entry  # an existing key keeps its position: the manifest order stays stable
        written.append(entry)

    if not written:
        return written
    touched_ids = {e["id"] for e in manifest["entries"]} | {e["id"] for e in written}
    manifest["entries"] = list(by_id.values())
    manifest["classes"] = _classes_still_used(merged_classes, exported_ids, manifest["entries"])
    atomic_write_json(root / MANIFEST, manifest)
    for stale in touched_ids - set(by_id):
        for rel in _entry_paths(stale).values():
            (root / rel).unlink(missing_ok=True)
    return written


def export_to_dataset(dataset_dir: str | Path, image: Any, mask: np.ndarray, classes: ClassTable, *,
                      hand: np.ndarray | None = None, model_version: str | None = None,
                      source: str | None = None) -> dict:
    """Add one labelled image (a core.imageio.ImageData) to a dataset folder, creating it if needed, or update
    its entry. ``source`` defaults to the absolute path the image was read from. Returns the entry."""
    src = source if source is not None else str(Path(image.meta.path).resolve())
    names = getattr(image.meta, "channel_names", None)
    item = ExportItem(pixels=image.pixels, mask=mask, source=src, hand=hand, model_version=model_version,
                      channel_names=tuple(names) if names else None)
    return export_many(dataset_dir, [item], classes)[0]


def remove_entry(dataset_dir: str | Path, entry_id: str) -> bool:
    """Drop an entry and its files. Returns False if the dataset has no such entry."""
    root = Path(dataset_dir)
    manifest = load_manifest(root)
    kept = [e for e in manifest["entries"] if e["id"] != entry_id]
    if len(kept) == len(manifest["entries"]):
        return False
    manifest["entries"] = kept
    atomic_write_json(root / MANIFEST, manifest)
    for rel in _entry_paths(entry_id).values():
        (root / rel).unlink(missing_ok=True)
    return True


# --- reading -----------------------------------------------------------------------------------------------

def load_entry(dataset_dir: str | Path, entry: Mapping | str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(pixels (H, W, C) in the stored dtype, mask (H, W), hand (H, W) bool)`` of one entry (a manifest
    entry dict, or its id)."""
    root = Path(dataset_dir)
    if isinstance(entry, str):
        found = [e for e in load_manifest(root)["entries"] if e["id"] == entry]
        if not found:
            raise DatasetError(f"{root} has no entry {entry!r}")
        entry = found[0]
    image_path = root / entry["image"]
    try:
        pixels = tifffile.imread(image_path)
    except (OSError, ValueError) as exc:
        raise DatasetError(f"Cannot open {image_path}: {exc}") from exc
    pixels = _as_hwc(pixels)
    expected = (entry["height"], entry["width"], entry["channels"])
    if pixels.shape != tuple(expected):
        raise DatasetError(f"{image_path} has shape {pixels.shape}, the manifest says {tuple(expected)}")
    mask = load_mask_png(root / entry["mask"])
    hand = load_mask_png(root / entry["hand"]) != 0
    for name, arr in (("mask", mask), ("hand map", hand)):
        if arr.shape != pixels.shape[:2]:
            raise DatasetError(f"{root / entry[name.split()[0]]}: {name} shape {arr.shape} does not match "
                               f"the image {pixels.shape[:2]}")
    return pixels, mask, hand


# --- nnU-Net v2 --------------------------------------------------------------------------------------------

_NNUNET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


def _encode_png(plane: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(plane))
    if not ok:
        raise DatasetError(f"PNG encoding failed for a {plane.dtype} plane of shape {plane.shape}")
    return buf.tobytes()


def _encode_tif(plane: np.ndarray) -> bytes:
    buf = BytesIO()
    tifffile.imwrite(buf, np.ascontiguousarray(plane), photometric="minisblack", compression="zlib")
    return buf.getvalue()


def _channel_names(entries: list[dict], channels: int) -> dict[str, str]:
    stored = entries[0].get("channel_names")
    if isinstance(stored, list) and len(stored) == channels:
        return {str(k): str(v) for k, v in enumerate(stored)}
    if channels == 1:
        return {"0": "intensity"}
    if channels == 3 and all(e["dtype"] == "uint8" for e in entries):
        return {"0": "R", "1": "G", "2": "B"}
    return {str(k): f"channel_{k}" for k in range(channels)}


def export_nnunet(dataset_dir: str | Path, out_root: str | Path, *, dataset_id: int = 501,
                  name: str = "segstudio") -> Path:
    """Write the dataset in nnU-Net v2's raw layout; returns ``out_root/Dataset<id>_<name>``.

    Choices, all made so nnU-Net reads the result with its 2D natural-image reader (NaturalImage2DIO):

    * every channel is its own grey file ``imagesTr/<case>_<k:04d><ending>`` (also for RGB): nnU-Net stacks
      the files as channels, and this keeps 16-bit data intact, which an RGB PNG could not;
    * ``file_ending`` is ``.png`` when all images are uint8/uint16 (lossless, what the reader expects for 2D);
      other dtypes (float, int16, uint32) are written as 2D ``.tif`` planes instead, labels included, since
      nnU-Net needs one ending for images and labels;
    * case identifiers are segstudio entry ids (content hashes), stable across re-exports;
    * label values are renumbered 0..K-1 in class-id order because nnU-Net requires consecutive labels;
      ``labels`` maps each class name to its new value (background 0);
    * channel names are descriptive ("intensity", "R"/"G"/"B", "channel_<k>"); nnU-Net z-scores each
      channel per image for such names, which suits fluorescence;
    * ``splits_final.json`` holds segstudio's fixed train/val split as a single fold; copy it into
      ``nnUNet_preprocessed/Dataset<id>_<name>/`` to train fold 0 on the same split;
    * the hand-painted maps have no nnU-Net counterpart and are not exported.

    Files from an earlier export of cases no longer in the dataset are removed from imagesTr/labelsTr.
    """
    root = Path(dataset_dir)
    manifest = load_manifest(root)
    entries = manifest["entries"]
    if not entries:
        raise DatasetError(f"{root} has no entries to export")
    if not (isinstance(dataset_id, int) and 1 <= dataset_id <= 999):
        raise DatasetError(f"nnU-Net dataset ids have three digits (1..999), not {dataset_id!r}")
    if not _NNUNET_NAME.match(name):
        raise DatasetError(f"nnU-Net dataset name {name!r} may hold only letters, digits, '_' and '-'")
    channels = {e["channels"] for e in entries}
    if len(channels) != 1:
        raise DatasetError(f"nnU-Net needs the same number of channels in every image; {root} mixes {sorted(channels)}")
    n_channels = channels.pop()
    ending = ".png" if all(e["dtype"] in ("uint8", "uint16") for e in entries) else ".tif"
    encode = _encode_png if ending == ".png" else _encode_tif

    class_ids = sorted(int(c["id"]) for c in manifest["classes"])
    if 0 not in class_ids:
        class_ids.insert(0, 0)
    names_by_id = {int(c["id"]): str(c["name"]) for c in manifest["classes"]}
    names_by_id.setdefault(0, "background")
    lut = np.zeros(max(class_ids) + 1, dtype=np.uint16)
    labels: dict[str, int] = {}
    for new, cid in enumerate(class_ids):
        lut[cid] = new
        label_name = names_by_id[cid] if cid else "background"
        if label_name in labels:  # nnU-Net keys labels by name: keep both classes apart
            label_name = f"{label_name}_{cid}"
        labels[label_name] = new
    label_dtype = np.uint8 if len(class_ids) <= 256 else np.uint16

    out = Path(out_root) / f"Dataset{dataset_id:03d}_{name}"
    images_dir, labels_dir = out / "imagesTr", out / "labelsTr"
    images_dir.mkdir(parents=True, exist_ok=True)
    labels_dir.mkdir(parents=True, exist_ok=True)
    expected_files: set[str] = set()
    for entry in entries:
        pixels, mask, _ = load_entry(root, entry)
        case = entry["id"]
        for k in range(n_channels):
            fname = f"{case}_{k:04d}{ending}"
            atomic_write_bytes(images_dir / fname, encode(pixels[:, :, k]))
            expected_files.add(f"imagesTr/{fname}")
        if int(mask.max(initial=0)) >= lut.size:
            raise DatasetError(f"{root / entry['mask']} holds class id {int(mask.max())}, which the manifest "
                               f"does not list")
        remapped = lut[mask].astype(label_dtype)
        atomic_write_bytes(labels_dir / f"{case}{ending}", encode(remapped))
        expected_files.add(f"labelsTr/{case}{ending}")
    for folder in (images_dir, labels_dir):
        for path in folder.iterdir():
            rel = f"{folder.name}/{path.name}"
            if path.is_file() and path.suffix.lower() in (".png", ".tif", ".tiff") and rel not in expected_files:
                path.unlink()

    atomic_write_json(out / "splits_final.json", [{
        "train": [e["id"] for e in entries if e["split"] == "train"],
        "val": [e["id"] for e in entries if e["split"] == "val"],
    }])
    atomic_write_json(out / "dataset.json", {
        "channel_names": _channel_names(entries, n_channels),
        "labels": labels,
        "numTraining": len(entries),
        "file_ending": ending,
        "overwrite_image_reader_writer": "NaturalImage2DIO",
        "name": name,
        "description": f"Exported by segstudio from {root.resolve()}",
        "licence": "as the source images",
    })
    return out
