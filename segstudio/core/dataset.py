"""Dataset folders: where Export puts corrected masks and what training reads.

Layout of a dataset folder::

    <dir>/dataset.json        manifest (below); written last, atomically, so it never names a missing file
    <dir>/images/<id>.tif     source pixels, lossless (zlib), original dtype, (H, W) or (H, W, C)
    <dir>/masks/<id>.png      index mask (uint8, or uint16 when a class id exceeds 255)
    <dir>/hand/<id>.png       uint8 0/1: pixels the user painted by hand
    <dir>/objects/<id>.tif    instance map: one id per object (uint16, uint32 past 65,535 objects), so
                              training can learn object interiors and boundaries

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
                  "mask_sha256", "hand_sha256", "class_pixels", "channel_names" (when known),
                  "pixel_size_um" (when known), "region" (a patch of a whole slide, see slide_dataset.py)}]}

The last entry fields are additions: content hashes of the mask and hand map (so :func:`manifest_hash`
changes exactly when the training data changes, without reading the files) and per-class pixel counts
(``{"<id>": count}``, for class weighting); channel names are kept when the reader knew them.

When a dataset's class table and an export's differ, the export's names and colours win for the ids it has
(a rename reaches the whole dataset). An id only the dataset has is kept while the mask of an entry still
uses it (its ``class_pixels``, or an older entry that does not record them) and dropped otherwise, so a
class the user removed does not come back through the dataset into the next fine-tuned model.

The module also writes the nnU-Net v2 "raw" layout (:func:`export_nnunet`) so the same corrections can train
an nnU-Net baseline.

A dataset folder is input from someone else: every manifest entry is checked (dataset_checks.py) before use,
every file it names must resolve inside the folder, and a mask or hand map whose content differs from the
hash its entry records is refused. Re-exporting an image writes its new mask and hand map under the entry's
other file names (``masks/<id>.png`` and ``masks/<id>-b.png`` alternate) and only then the manifest, so an
export killed half-way leaves the old entry describing the old, intact files.
"""
from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import tifffile

from segstudio.core import dataset_checks, dataset_codecs
from segstudio.core.dataset_checks import UnsafeDataset
from segstudio.core.dataset_codecs import tiff_bytes
from segstudio.core.labels import ClassTable
from segstudio.core.objects.instances import connected_objects, ids_dtype
from segstudio.core.storage import (
    atomic_write_bytes,
    atomic_write_json,
    load_mask_png,
    remove_stale_temp_files,
    save_mask_png,
)
from segstudio.core.text import printable

log = logging.getLogger(__name__)

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
    objects: np.ndarray | None = None  # instance map the user found or edited; None: the mask's patches
    pixel_size_um: float | None = None  # micrometres per pixel, when the source records it
    region: Mapping[str, Any] | None = None  # a patch of a larger image: {"slide", "x", "y", "width", "height"}


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
        raise DatasetError(f"Cannot read {printable(path)}: {exc}") from exc
    except RecursionError:  # Python's parser gives up on JSON nested a few thousand levels deep
        raise DatasetError(f"Cannot read {printable(path)}: the JSON is nested too deeply") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise DatasetError(f"{path} is not a segstudio dataset manifest (format is not {FORMAT!r})")
    version = manifest.get("version")
    if not isinstance(version, int) or version > VERSION:
        raise DatasetError(f"{path} has version {version!r}; this segstudio reads version {VERSION} or older")
    if not isinstance(manifest.get("entries"), list) or not isinstance(manifest.get("classes"), list):
        raise DatasetError(f"{path} is damaged: 'entries' and 'classes' must be lists")
    seen: set[str] = set()
    for position, entry in enumerate(manifest["entries"]):
        try:
            dataset_checks.check_entry(position, entry)
        except UnsafeDataset as exc:
            raise DatasetError(f"{printable(path)} is refused: {exc}") from None
        if entry["id"] in seen:
            raise DatasetError(f"{printable(path)} is refused: entry id {entry['id']} appears twice")
        seen.add(entry["id"])
    return manifest


def load_classes(dataset_dir: str | Path) -> ClassTable:
    """The class table stored in a dataset's manifest."""
    try:
        return ClassTable.from_list(load_manifest(dataset_dir)["classes"])
    except DatasetError:
        raise
    except ValueError as exc:
        raise DatasetError(f"{printable(Path(dataset_dir) / MANIFEST)} has an unusable class table: {exc}") from None


def manifest_hash(dataset_dir: str | Path) -> str:
    """A SHA-256 that changes exactly when the training data changes: the class table, the set of images,
    their masks, hand maps and splits. Timestamps, source paths and entry order do not count, so re-exporting
    an unchanged mask keeps the hash (a model's record of what it was trained on stays valid)."""
    root = Path(dataset_dir)
    manifest = load_manifest(root)
    rows = []
    for e in sorted(manifest["entries"], key=lambda e: e["id"]):
        mask_sha = e.get("mask_sha256") or _file_sha(root, e["mask"])
        hand_sha = e.get("hand_sha256") or _file_sha(root, e["hand"])
        rows.append([e["id"], e["sha256"], mask_sha, hand_sha, e["split"]])
    classes = sorted(([c["id"], c["name"]] for c in manifest["classes"]), key=lambda c: c[0])
    blob = json.dumps({"classes": classes, "entries": rows}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def _file_sha(root: Path, relative: str) -> str:
    try:
        return hashlib.sha256(dataset_checks.regular_file(root, relative).read_bytes()).hexdigest()
    except UnsafeDataset as exc:
        raise DatasetError(str(exc)) from None
    except OSError as exc:
        raise DatasetError(f"Cannot read {printable(root / relative)}: {exc.strerror or exc}") from exc


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


def _entry_paths(entry_id: str, slot: str = "") -> dict:
    """File names of an entry; `slot` "-b" is the alternate mask/hand pair written on re-export."""
    return {"image": f"images/{entry_id}.tif", "mask": f"masks/{entry_id}{slot}.png",
            "hand": f"hand/{entry_id}{slot}.png", "objects": f"objects/{entry_id}{slot}.tif"}


def _all_entry_files(entry_id: str) -> set[str]:
    return set(_entry_paths(entry_id).values()) | set(_entry_paths(entry_id, "-b").values())


def _free_slot(existing: dict | None) -> str:
    # The files an entry names are never overwritten: until the manifest is replaced they are the truth.
    return "-b" if existing is not None and existing.get("mask") == _entry_paths(existing["id"])["mask"] else ""


def _write_item(root: Path, item: ExportItem, classes: ClassTable, existing: dict[str, dict]) -> dict:
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
    paths = _entry_paths(entry_id, _free_slot(existing.get(entry_id)))
    image_path = root / paths["image"]
    # Same id means same pixels: an existing image file is already right, and skipping it keeps re-exporting a
    # large slide cheap. (A link in its place is replaced: entries hold files, not links.)
    if image_path.is_symlink() or not image_path.is_file():
        atomic_write_bytes(image_path, tiff_bytes(pixels))
    save_mask_png(root / paths["mask"], mask)
    save_mask_png(root / paths["hand"], hand)
    objects = _objects_of(item, mask)
    atomic_write_bytes(root / paths["objects"], dataset_codecs.encode_tif(objects))
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
        "objects_sha256": _array_hash(objects),
        "class_pixels": {str(k): v for k, v in sorted(class_pixels.items())},
        **({"channel_names": list(item.channel_names)} if item.channel_names else {}),
        **({"pixel_size_um": float(item.pixel_size_um)} if item.pixel_size_um else {}),
        **({"region": dict(item.region)} if item.region else {}),
    }


def _objects_of(item: ExportItem, mask: np.ndarray) -> np.ndarray:
    if item.objects is None:
        # Connected patches, not the watershed: an export must stay quick whatever the mask holds, and
        # objects the user split or joined arrive in item.objects.
        return connected_objects(mask)
    objects = np.asarray(item.objects)
    if objects.shape != mask.shape or objects.dtype.kind not in "ui":
        raise DatasetError(f"the instance map ({objects.shape}, {objects.dtype}) does not fit the mask {mask.shape}")
    return objects.astype(ids_dtype(int(objects.max(initial=0))))


def load_objects(dataset_dir: str | Path, entry: Mapping) -> np.ndarray | None:
    """The instance map of an entry (0: background), or None for an entry exported before objects were kept."""
    root, relative = Path(dataset_dir), entry.get("objects")
    if relative is None:
        return None
    parts = relative.split("/") if isinstance(relative, str) else []
    try:
        if len(parts) != 2 or parts[0] != "objects":
            raise UnsafeDataset(f"entry {entry.get('id')}: objects {printable(repr(relative))[:80]} is not a file "
                                "inside the dataset's objects/ folder")
        path = dataset_checks.regular_file(root, relative)
        objects = tifffile.imread(path)
    except UnsafeDataset as exc:
        raise DatasetError(str(exc)) from None
    except (OSError, ValueError) as exc:
        raise DatasetError(f"Cannot open {printable(root / relative)}: {exc}") from exc
    if objects.shape != (entry["height"], entry["width"]):
        raise DatasetError(f"{printable(path)} has shape {objects.shape}, "
                           f"the image is {entry['height']} x {entry['width']}")
    stored = entry.get("objects_sha256")
    if stored and _array_hash(objects) != stored:
        raise DatasetError(f"{printable(path)} does not match the hash its manifest entry records (objects_sha256)")
    return objects


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
    _prepare_folders(root)

    by_id: dict[str, dict] = {e["id"]: e for e in manifest["entries"]}
    before = dict(by_id)
    written: list[dict] = []
    merged_classes = manifest["classes"]
    exported_ids: set[int] = set()
    for item in items:
        table = item.classes or classes
        try:
            entry = _write_item(root, item, table, before)
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
    _remove_unreferenced(root, (touched_ids - set(by_id)) | {e["id"] for e in written}, by_id)
    return written


def _prepare_folders(root: Path) -> None:
    """Create the entry folders; refuse ones that are links out of the dataset; clear killed writers' temp
    files (only old ones: a writer may be at work)."""
    for sub in ("images", "masks", "hand", "objects"):
        (root / sub).mkdir(parents=True, exist_ok=True)
        try:
            dataset_checks.inside(root, sub)
        except UnsafeDataset as exc:
            raise DatasetError(str(exc)) from None
        remove_stale_temp_files(root / sub)
    remove_stale_temp_files(root)


def _remove_unreferenced(root: Path, ids: set[str], by_id: dict[str, dict]) -> None:
    """After the manifest is written: delete the files of these ids that no entry names any more."""
    for entry_id in ids:
        kept = by_id.get(entry_id)
        named = {kept["image"], kept["mask"], kept["hand"], kept.get("objects")} if kept else set()
        for rel in _all_entry_files(entry_id) - named:
            (root / rel).unlink(missing_ok=True)


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
    if not isinstance(entry_id, str) or not dataset_checks.ENTRY_ID.match(entry_id):
        raise DatasetError(f"{printable(repr(entry_id))} is not a dataset entry id")
    manifest = load_manifest(root)
    kept = [e for e in manifest["entries"] if e["id"] != entry_id]
    if len(kept) == len(manifest["entries"]):
        return False
    manifest["entries"] = kept
    atomic_write_json(root / MANIFEST, manifest)
    _remove_unreferenced(root, {entry_id}, {})
    return True


# --- reading -----------------------------------------------------------------------------------------------

def load_entry(dataset_dir: str | Path, entry: Mapping | str, *,
               check_pixels_hash: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(pixels (H, W, C) in the stored dtype, mask (H, W), hand (H, W) bool)`` of one entry (a manifest
    entry dict, or its id).

    Every file must be a regular file inside the dataset (a FIFO is refused before it is opened, so a
    reader never blocks on one). The mask and hand map must match the hashes their entry records, when it
    records them; with ``check_pixels_hash`` the pixels must match ``sha256`` too (see :func:`content_hash`).
    Any mismatch is a DatasetError that names the file.
    """
    root = Path(dataset_dir)
    if isinstance(entry, str):
        found = [e for e in load_manifest(root)["entries"] if e["id"] == entry]
        if not found:
            raise DatasetError(f"{root} has no entry {printable(entry)!r}")
        entry = found[0]
    try:
        dataset_checks.check_entry(0, entry)
        image_path, mask_path, hand_path = (dataset_checks.regular_file(root, entry[k])
                                            for k in ("image", "mask", "hand"))
    except UnsafeDataset as exc:
        raise DatasetError(str(exc)) from None
    try:
        pixels = tifffile.imread(image_path)
    except (OSError, ValueError) as exc:
        raise DatasetError(f"Cannot open {printable(image_path)}: {exc}") from exc
    pixels = _as_hwc(pixels)
    expected = (entry["height"], entry["width"], entry["channels"])
    if pixels.shape != tuple(expected):
        raise DatasetError(f"{printable(image_path)} has shape {pixels.shape}, the manifest says {tuple(expected)}")
    mask = load_mask_png(mask_path)
    hand = load_mask_png(hand_path)
    for name, arr in (("mask", mask), ("hand map", hand)):
        if arr.shape != pixels.shape[:2]:
            raise DatasetError(f"{printable(root / entry[name.split()[0]])}: {name} shape {arr.shape} does not "
                               f"match the image {pixels.shape[:2]}")
    _check_hashes(root, entry, pixels if check_pixels_hash else None, mask, hand)
    return pixels, mask, hand != 0


def _check_hashes(root: Path, entry: Mapping, pixels: np.ndarray | None, mask: np.ndarray,
                  hand: np.ndarray) -> None:
    checks = [("mask", "mask_sha256", mask, _array_hash), ("hand", "hand_sha256", hand, _array_hash)]
    if pixels is not None:
        checks.append(("image", "sha256", pixels, content_hash))
    for field, hash_field, array, hasher in checks:
        stored = entry.get(hash_field)
        if stored and hasher(array) != stored:
            raise DatasetError(f"{printable(root / entry[field])} does not match the hash its manifest entry "
                               f"records ({hash_field}): the file was changed or replaced after export")


def verify_dataset(dataset_dir: str | Path) -> list[str]:
    """Every problem of a dataset folder, one line per entry (empty when all entries are sound)."""
    root = Path(dataset_dir)
    problems = []
    for entry in load_manifest(root)["entries"]:
        try:
            load_entry(root, entry, check_pixels_hash=True)
        except (DatasetError, ValueError) as exc:  # ImageReadError is a ValueError
            problems.append(f"entry {entry['id']}: {exc}")
    return problems
