"""Training data: labelled images from dataset folders, the validation split, and random crops.

Images are normalised exactly as the predictor will normalise them later (its own `prepare_input`), so
training, validation and later predictions see the same numbers.
"""
from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torchvision import tv_tensors

from segstudio.engine.predict import prepare_input
from segstudio.engine.training.augment import HAND, LABEL, OBJECTS, VALID, build_augmentation
from segstudio.engine.training.borders import border_targets, borders_note, objects_teaching_borders
from segstudio.engine.training.class_check import entry_name
from segstudio.engine.training.distributed import DistContext
from segstudio.engine.training.errors import TrainingCancelled, TrainingError
from segstudio.engine.training.split import (
    HOLDOUT_STRIP,
    UNCORRECTED_WARNING,
    holdout_split,
    nobody_corrected,
    plan_validation,
)

# The split rule lives in split.py; how entries are named in messages, in class_check.py.
__all__ = ["HOLDOUT_STRIP", "entry_name", "holdout_split", "load_training_data"]

CancelFn = Callable[[], bool]


@dataclass
class LabelledImage:
    key: str                   # the image file it was exported from (its dataset folder when unknown), for messages
    image: torch.Tensor        # normalised float32 (C, H, W)
    labels: np.ndarray         # (H, W) uint8/uint16 class ids
    hand: np.ndarray           # (H, W) bool
    raw: np.ndarray | None = None  # original pixels, kept only for images validated by the Predictor
    # (H, W) instance map that teaches a border output (borders.objects_teaching_borders), else None
    objects: np.ndarray | None = None

    @property
    def hw(self) -> tuple[int, int]:
        return int(self.labels.shape[0]), int(self.labels.shape[1])

    @property
    def has_objects(self) -> bool:
        return self.objects is not None

    def window(self, y: int, x: int, h: int, w: int) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
        """Network input, class ids and hand map of a window (views, no copies)."""
        return self.image[:, y:y + h, x:x + w], self.labels[y:y + h, x:x + w], self.hand[y:y + h, x:x + w]

    def objects_window(self, y: int, x: int, h: int, w: int) -> np.ndarray | None:
        """The instance map of a window (a view), or None for an image without one."""
        return None if self.objects is None else self.objects[y:y + h, x:x + w]

    def loaded(self, keep_raw_above: int) -> LabelledImage:
        """Already whole in memory (a ChunkedImage reads itself here)."""
        return self


def _class_table(manifests: list[tuple[Path, dict]]) -> list[dict]:
    first_dir, first = manifests[0]
    classes = [dict(c) for c in first.get("classes", [])]
    names = {int(c["id"]): c["name"] for c in classes}
    for folder, manifest in manifests[1:]:
        other = {int(c["id"]): c["name"] for c in manifest.get("classes", [])}
        if other != names:
            raise TrainingError(
                f"Dataset {folder} names its classes {other}, but {first_dir} names them {names}; "
                "datasets trained together must use the same class ids"
            )
    return classes


@dataclass
class TrainingData:
    train: list[LabelledImage]
    val: list[LabelledImage]
    classes: list[dict]        # the datasets' class table ([{"id", "name", "color"}])
    datasets: list[dict]       # per folder: path, manifest_hash, entries (recorded in the lineage)
    val_source: str            # "dataset" (the manifests' val split), "holdout" (hash of the entry ids) or "strip"
    notes: list[str]


def load_training_data(
    folders: Sequence[str | Path],
    *,
    in_channels: int,
    normalisation: dict,
    num_classes: int,
    val_whole_max_pixels: int,
    cancel: CancelFn | None = None,
    model_input: dict | None = None,
    in_memory_max_pixels: int | None = None,
    chunk_dir: str | Path | None = None,
    borders: bool = False,
):
    """Read every entry of every dataset folder, normalised for a model with this input description.

    A dataset of more than ``in_memory_max_pixels`` pixels (None: no limit) is not read into memory: each
    entry is copied once into chunked storage under ``chunk_dir`` (chunks.py) and its items read crop by crop.
    With ``borders`` (a model with a border output) the instance maps that teach borders come too, and a
    note says how many training images have one.
    """
    from segstudio.core.dataset import manifest_hash

    manifests = _read_manifests(folders)
    classes = _class_table(manifests)
    notes: list[str] = []

    all_entries = [(folder, e) for folder, m in manifests for e in m.get("entries", [])]
    if not all_entries:
        raise TrainingError("The dataset folders contain no labelled images: " + ", ".join(map(str, folders)))
    plan = plan_validation(e for _, e in all_entries)
    if nobody_corrected(e for _, e in all_entries):
        notes.append(UNCORRECTED_WARNING)
    if plan.source == "holdout":
        notes.append(f"{plan.describe()} (The datasets mark no usable set of images for checking; these were "
                     "chosen by a hash of their id.)")

    total_pixels = sum(int(e["height"]) * int(e["width"]) for _, e in all_entries)
    chunked = in_memory_max_pixels is not None and total_pixels > in_memory_max_pixels
    if chunked:
        notes.append(f"The images hold {total_pixels:,} pixels, more than the {in_memory_max_pixels:,} kept in "
                     "memory: training reads them crop by crop from chunked copies")
    reader = _chunked_reader(chunk_dir) if chunked else _read_entry
    train: list = []
    val: list = []
    sources: dict[int, np.ndarray] = {}  # raw pixels by id(item), in case a strip of each image must be held out
    for folder, entry in all_entries:
        if cancel is not None and cancel():
            raise TrainingCancelled
        is_val = str(entry["id"]) in plan.check_ids
        item, pixels = reader(folder, entry, in_channels=in_channels, normalisation=normalisation,
                              model_input=model_input, num_classes=num_classes, keep_raw=is_val,
                              val_whole_max_pixels=val_whole_max_pixels, borders=borders)
        (val if is_val else train).append(item)
        sources[id(item)] = pixels
    val_source = plan.source
    if not train or not val:
        # Too few images to hold whole ones out (a user's first fine-tune often has one): train on most
        # of every image and check the new model on a strip that training never sees.
        train, val = split_into_strips(train + val, sources, val_whole_max_pixels)
        val_source = "strip"
        notes.append(plan.describe() if plan.source == "strip" else
                     f"The last {int(HOLDOUT_STRIP * 100)}% of each image is held out to check the new model")
    if borders:
        notes.append(borders_note(sum(item.has_objects for item in train), len(train)))
    if chunked:
        notes += _pruned(chunk_dir, train + val)
    info = [
        {
            "path": str(folder.resolve()),
            "manifest_hash": manifest_hash(folder),
            "entries": len(m.get("entries", [])),
        }
        for folder, m in manifests
    ]
    return TrainingData(train, val, classes, info, val_source, notes)


def _read_manifests(folders: Sequence[str | Path]) -> list[tuple[Path, dict]]:
    from segstudio.core.dataset import load_manifest

    if not folders:
        raise TrainingError("No dataset folder given")
    manifests: list[tuple[Path, dict]] = []
    for folder in folders:
        folder = Path(folder)
        try:
            manifests.append((folder, load_manifest(folder)))
        except Exception as e:  # noqa: BLE001 - any unreadable manifest gets the same clear message
            raise TrainingError(f"Cannot read dataset {folder}: {e}") from e
    return manifests


def _read_entry(folder: Path, entry: dict, *, in_channels: int, normalisation: dict, num_classes: int,
                keep_raw: bool, val_whole_max_pixels: int, model_input: dict | None = None,
                borders: bool = False) -> tuple[LabelledImage, np.ndarray]:
    """One dataset entry, checked against the model and normalised; also its original pixels (and, with
    ``borders``, its instance map when that teaches borders)."""
    from segstudio.core.dataset import load_entry, load_objects

    key = entry_name(folder, entry)
    try:
        pixels, mask, hand = load_entry(folder, entry)
    except Exception as e:  # noqa: BLE001
        raise TrainingError(f"Cannot read {key}: {e}") from e
    mask = np.asarray(mask)
    if mask.shape[:2] != pixels.shape[:2]:
        raise TrainingError(f"Mask and image of {key} differ in size: {mask.shape[:2]} vs {pixels.shape[:2]}")
    top = int(mask.max()) if mask.size else 0
    if top >= num_classes:
        raise TrainingError(
            f"The mask of {key} uses class id {top}, but the model predicts only {num_classes} classes. "
            "Fine-tune from the window offers to extend the model; on the command line add --extend-classes"
        )
    hand_map = np.zeros(mask.shape, bool) if hand is None else np.asarray(hand).astype(bool)
    network_input = prepare_input(pixels, in_channels, normalisation, model_input)
    image = torch.from_numpy(np.ascontiguousarray(network_input, np.float32))
    raw = pixels if keep_raw and mask.size > val_whole_max_pixels else None
    objects = None
    if borders:
        try:
            objects = objects_teaching_borders(load_objects(folder, entry), mask)
        except (OSError, ValueError) as e:  # DatasetError is a ValueError
            raise TrainingError(f"Cannot read the objects of {key}: {e}") from e
    return LabelledImage(key, image, mask, hand_map, raw, objects), pixels


def _pruned(chunk_dir: str | Path | None, items: Sequence) -> list[str]:
    """Old chunked copies removed now that this run's own are in place, in a note (none when nothing went)."""
    from segstudio.engine.training.chunks import PRUNE_AFTER_DAYS, default_chunk_dir, prune_copies

    root = Path(chunk_dir) if chunk_dir else default_chunk_dir()
    try:
        removed, freed = prune_copies(root, {item.path for item in items})
    except OSError:
        return []  # tidying up never stops a run
    if not removed:
        return []
    return [f"Removed {removed} chunked cop{'y' if removed == 1 else 'ies'} of training images unused for "
            f"{PRUNE_AFTER_DAYS} days ({freed / 2**20:,.0f} MB) from {root}"]


def _chunked_reader(chunk_dir: str | Path | None):
    """Reads an entry as a ChunkedImage (its chunked copy made first if needed); no pixels stay in memory."""
    from segstudio.engine.training.chunks import ChunkedImage, default_chunk_dir, ensure_copy

    root = Path(chunk_dir) if chunk_dir else default_chunk_dir()

    def read(folder: Path, entry: dict, *, in_channels: int, normalisation: dict, num_classes: int,
             model_input: dict | None, borders: bool, **_unused) -> tuple[ChunkedImage, None]:
        key = entry_name(folder, entry)
        try:
            path = ensure_copy(folder, entry, root)
        except OSError as e:
            raise TrainingError(f"Cannot make the chunked copy of {key} in {root}: {e.strerror or e}") from e
        except Exception as e:  # noqa: BLE001 - the entry's files are unreadable: the same message as whole
            raise TrainingError(f"Cannot read {key}: {e}") from e
        return ChunkedImage.open(key, path, in_channels=in_channels, normalisation=normalisation,
                                 model_input=model_input, num_classes=num_classes, borders=borders), None

    return read


def split_into_strips(items: Sequence, sources: dict[int, np.ndarray | None], val_whole_max_pixels: int):
    """Cut each image across its longer side: the first 80% trains, the last 20% validates.

    The strips never overlap, so the validation score is measured on pixels the model was not trained on.
    """
    train: list = []
    val: list = []
    for item in items:
        h, w = item.hw
        along_width = w >= h
        length = w if along_width else h
        held = max(1, int(round(length * HOLDOUT_STRIP)))
        if length - held < 1:
            raise TrainingError(f"Image {item.key} is too small to hold out a part of it for validation")
        cut = length - held
        if not isinstance(item, LabelledImage):  # a ChunkedImage: its parts are boxes of the same copy
            train.append(item.part(item.key + " (training part)", 0, 0, *((h, cut) if along_width else (cut, w))))
            val.append(item.part(item.key + " (held-out strip)", *((0, cut, h, held) if along_width
                                                                    else (cut, 0, held, w))))
            continue
        first = (slice(None), slice(0, cut)) if along_width else (slice(0, cut), slice(None))
        last = (slice(None), slice(cut, None)) if along_width else (slice(cut, None), slice(None))
        objects = (None, None) if item.objects is None else (item.objects[first], item.objects[last])
        train.append(LabelledImage(item.key + " (training part)", item.image[(slice(None), *first)].contiguous(),
                           item.labels[first], item.hand[first], objects=objects[0]))
        labels = item.labels[last]
        raw = sources[id(item)][last] if labels.size > val_whole_max_pixels else None
        val.append(LabelledImage(item.key + " (held-out strip)", item.image[(slice(None), *last)].contiguous(), labels,
                         item.hand[last], raw, objects[1]))
    return train, val


class CropDataset(torch.utils.data.Dataset):
    """Random crops (padded where the image is smaller) with joint augmentation.

    Each image contributes about (area / crop area) crops per epoch, so an epoch covers the data about
    once whatever the image sizes. Sample index k encodes (epoch, i) as k = epoch * len + i and the crop
    position and augmentation are drawn from an RNG seeded by (seed, epoch, i): results do not depend on
    the number of loader processes, and persistent loader processes need no epoch updates.

    A sample is (image, class ids, weight); with ``borders`` (a model with a border output) also the border
    target and its weight, which is 0 all over for an image without an instance map (borders.py).
    """

    def __init__(self, items: list[LabelledImage], crop: int, *, augment: bool, strength: float,
                 hand_weight: float, seed: int, borders: bool = False):
        self.items = items
        self.crop = int(crop)
        self.hand_weight = float(hand_weight)
        self.seed = int(seed)
        self.borders = bool(borders)
        counts = [max(1, round(h * w / float(self.crop * self.crop))) for h, w in (it.hw for it in items)]
        self.index = np.repeat(np.arange(len(items)), counts)
        self.transform = build_augmentation(strength) if augment else None

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, k: int):
        epoch, i = divmod(int(k), len(self.index))
        item = self.items[self.index[i]]
        rng = np.random.default_rng([self.seed, epoch, i])
        image, targets = self._crop(item, rng)
        if self.transform is not None:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(rng.integers(2**62)))
                image, targets = self.transform(tv_tensors.Image(image), tv_tensors.Mask(targets))
            image = image.as_subclass(torch.Tensor)
            targets = targets.as_subclass(torch.Tensor)
        valid = targets[VALID].to(torch.float32)
        weight = valid * (1.0 + (self.hand_weight - 1.0) * targets[HAND].to(torch.float32))
        if not self.borders:
            return image.contiguous(), targets[LABEL].contiguous(), weight
        if item.has_objects:
            border, trusted = border_targets(targets[OBJECTS], targets[VALID])
        else:
            border, trusted = torch.zeros_like(valid), torch.zeros_like(valid)
        return image.contiguous(), targets[LABEL].contiguous(), weight, border, weight * trusted

    def _crop(self, item: LabelledImage, rng: np.random.Generator):
        c = self.crop
        h, w = item.hw
        # Source window and destination offset per axis: crop inside big images, pad around small ones.
        (sy, dy, n_y), (sx, dx, n_x) = (_window(h, c, rng), _window(w, c, rng))
        pixels, labels, hand = item.window(sy, sx, n_y, n_x)
        image = torch.zeros((pixels.shape[0], c, c), dtype=torch.float32)
        targets = torch.zeros((4 if self.borders else 3, c, c), dtype=torch.int64)
        image[:, dy:dy + n_y, dx:dx + n_x] = pixels
        targets[LABEL, dy:dy + n_y, dx:dx + n_x] = torch.from_numpy(labels.astype(np.int64))
        targets[HAND, dy:dy + n_y, dx:dx + n_x] = torch.from_numpy(hand.astype(np.int64))
        targets[VALID, dy:dy + n_y, dx:dx + n_x] = 1
        if self.borders and item.has_objects:
            objects = item.objects_window(sy, sx, n_y, n_x)
            targets[OBJECTS, dy:dy + n_y, dx:dx + n_x] = torch.from_numpy(objects.astype(np.int64))
        return image, targets


def _window(size: int, crop: int, rng: np.random.Generator) -> tuple[int, int, int]:
    if size >= crop:
        return int(rng.integers(0, size - crop + 1)), 0, crop
    return 0, int(rng.integers(0, crop - size + 1)), size


class _EpochIndexSampler(torch.utils.data.Sampler):
    """Yields epoch * n + i for the indices i of an inner sampler (see CropDataset)."""

    def __init__(self, inner, n: int):
        self.inner = inner
        self.n = n
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if hasattr(self.inner, "set_epoch"):
            self.inner.set_epoch(epoch)

    def __iter__(self):
        offset = self.epoch * self.n
        return (offset + int(i) for i in self.inner)

    def __len__(self) -> int:
        return len(self.inner)


def round_up(n: int, multiple: int) -> int:
    return int(math.ceil(n / multiple) * multiple)


def resolve_workers(requested: int, device: torch.device) -> int:
    if requested >= 0:
        return requested
    if device.type == "cuda":
        return max(1, min(4, (os.cpu_count() or 2) // 2))
    return 0


def make_loader(dataset: CropDataset, batch: int, workers: int, ctx: DistContext, seed: int,
                device: torch.device):
    if ctx.enabled:
        # Each rank its own share of the crops, none twice in an epoch: the few left over when the count
        # does not divide are dropped (a different few each epoch) rather than repeated on another rank.
        inner = torch.utils.data.DistributedSampler(
            range(len(dataset)), num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True, seed=seed,
            drop_last=len(dataset) >= ctx.world_size)
    else:
        g = torch.Generator()
        g.manual_seed(seed)
        inner = torch.utils.data.RandomSampler(range(len(dataset)), generator=g)
    sampler = _EpochIndexSampler(inner, len(dataset))
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch, sampler=sampler, num_workers=workers,
        pin_memory=device.type == "cuda", persistent_workers=workers > 0, drop_last=False)
    return loader, sampler


