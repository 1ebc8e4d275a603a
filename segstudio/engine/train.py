"""Incremental fine-tuning: dataset folders in, a new model version out.

The flow of `fine_tune`:
  1. load the base model from the library and the labelled images of every dataset folder, normalised
     exactly as the predictor will normalise them later (so training and inference see the same numbers);
  2. measure the base ("parent") model on the validation split;
  3. train on random crops with joint image/target augmentation, cross-entropy + soft Dice, extra weight
     on pixels the user corrected by hand, optional frozen encoder, mixed precision on GPU;
  4. measure the result ("child") on the same split after every epoch;
  5. write it as a NEW version next to the parent (never over it) and make it the active model only if it
     is at least as good as the parent on that split.

Nothing is written before step 5 and the write itself is atomic, so a cancel, a crash, a killed process,
a non-finite loss or running out of memory leave the library exactly as it was.
"""
from __future__ import annotations

import dataclasses
import gc
import hashlib
import math
import os
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchvision import tv_tensors

from segstudio.engine.augment import HAND, LABEL, VALID, build_augmentation
from segstudio.engine.distributed import DistContext, unwrap_model, wrap_model
from segstudio.engine.hostmem import keep_host_memory

ProgressFn = Callable[[dict], None]
CancelFn = Callable[[], bool]

#: Top-level child modules whose names start with one of these are the encoder (see `encoder_modules`).
ENCODER_PREFIXES = ("enc", "backbone", "features", "stage", "down", "stem", "inc")

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class TrainingError(RuntimeError):
    """Training stopped for a reason the user can act on; the message says which."""


class _Cancelled(Exception):
    pass


class _OutOfMemory(Exception):
    pass


@dataclass
class TrainConfig:
    base: str                                  # model id ("name/vN"), family name (newest) or .safetensors path
    data: Sequence[str | Path] = ()            # dataset folders (segstudio.core.dataset layout)
    epochs: int = 20
    steps: int | None = None                   # optimisation steps; when set it replaces `epochs`
    lr: float = 3e-4
    batch_size: int = 8                        # per process under torchrun
    crop: int = 256
    freeze_encoder: bool = False
    augment: bool = True
    augment_strength: float = 1.0
    hand_weight: float = 3.0                   # loss weight of hand-painted pixels (1.0 = same as the rest)
    dice_weight: float = 1.0
    weight_decay: float = 1e-4
    amp: bool = True                           # mixed precision on GPU (ignored on CPU)
    device: str = "auto"
    seed: int = 0
    num_workers: int = -1                      # -1: a few loader processes on GPU, none on CPU
    name: str | None = None                    # family of the new version; default: the parent's
    force_promote: bool = False
    progress_interval_s: float = 0.5          # at most one "step" event per interval (first and last always)
    val_whole_max_pixels: int = 1024 * 1024    # larger validation images go through the tiled Predictor

    def settings(self) -> dict:
        """The JSON-able settings recorded in the new version's lineage."""
        d = dataclasses.asdict(self)
        d["data"] = [str(Path(p).resolve()) for p in self.data]
        return d


@dataclass
class TrainResult:
    status: str                                # "done" or "cancelled"
    version: str | None = None                 # id of the new version ("name/vN")
    path: Path | None = None
    promoted: bool = False
    parent_metrics: dict | None = None
    child_metrics: dict | None = None
    steps: int = 0
    epochs: int = 0
    batch_size: int = 0                        # after any out-of-memory reduction
    crop: int = 0
    notes: list[str] = field(default_factory=list)
    # train_s: wall time of the optimisation steps (loading included, validation not); train_cpu_s: the
    # process's CPU time over the same spans (a steadier figure on a busy machine); val_s, total_s, samples
    timing: dict = field(default_factory=dict)
    replicas_identical: bool | None = None     # DDP only: all ranks ended with the same weights


# --- encoder -------------------------------------------------------------------------------------
def encoder_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The submodules that form the model's encoder, by this rule (first that finds any wins):

    1. the model's own `encoder_modules()` method, if it has one (returns (name, submodule) pairs);
    2. top-level children whose names start with one of ENCODER_PREFIXES, the naming the registry's
       architectures use: U-Net and DeconvNet "enc1".."encN", FCN "stage1".."stage5", PSPNet and
       DeepLabv3+ "backbone" (also "encoder", "features", "down2", "stem", "inc" of other code bases).
       A U-Net's bottleneck and an FCN's fc6/fc7 are not part of it: they stay trainable;
    3. the submodules hooked by the model's taps of kind "encoder" (segstudio.models.taps).
    """
    model = unwrap_model(model)
    own = getattr(model, "encoder_modules", None)
    if callable(own):
        return list(own())
    found = [(n, m) for n, m in model.named_children() if n.lower().startswith(ENCODER_PREFIXES)]
    if found:
        return found
    try:
        from segstudio.models.taps import list_taps
    except ImportError:
        return []
    names = [t.module for t in list_taps(model) if t.kind == "encoder" and t.module]
    # A tap on "enc.1" is inside one on "enc": keep the outermost so no parameter is listed twice.
    names = [n for n in names if not any(n != o and n.startswith(o + ".") for o in names)]
    return [(n, model.get_submodule(n)) for n in dict.fromkeys(names)]


def encoder_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Parameters of the encoder found by `encoder_modules` (each listed once)."""
    seen: dict[int, nn.Parameter] = {}
    for _, module in encoder_modules(model):
        for p in module.parameters():
            seen.setdefault(id(p), p)
    return list(seen.values())


_STAT_NORMS = (nn.modules.batchnorm._BatchNorm, nn.modules.instancenorm._InstanceNorm)


def set_train_mode(model: nn.Module, frozen: Sequence[nn.Module] = ()) -> None:
    """Training mode, except that norm layers inside a frozen encoder keep their running statistics."""
    model.train()
    for module in frozen:
        for sub in module.modules():
            if isinstance(sub, _STAT_NORMS):
                sub.eval()


# --- data ----------------------------------------------------------------------------------------
@dataclass
class _Item:
    key: str                   # "<dataset folder>:<entry id>", for messages
    image: torch.Tensor        # normalised float32 (C, H, W)
    labels: np.ndarray         # (H, W) uint8/uint16 class ids
    hand: np.ndarray           # (H, W) bool
    raw: np.ndarray | None = None  # original pixels, kept only for images validated by the Predictor

    @property
    def hw(self) -> tuple[int, int]:
        return int(self.labels.shape[0]), int(self.labels.shape[1])


def _input_preparer():
    try:  # the predictor's own function, so validation and later predictions see identical input
        from segstudio.engine.predict import prepare_input
    except ImportError:
        return _prepare_input_fallback
    return prepare_input


def _prepare_input_fallback(pixels: np.ndarray, in_channels: int, normalisation: dict) -> np.ndarray:
    from segstudio.core.imageio import percentile_normalize

    x = percentile_normalize(
        pixels, float(normalisation.get("low", 1.0)), float(normalisation.get("high", 99.8)), per_channel=True
    )
    if x.ndim == 2:
        x = x[:, :, None]
    c = x.shape[2]
    if in_channels == 1 and c > 1:
        x = x.mean(axis=2, keepdims=True)
    elif c < in_channels:
        x = x[:, :, [i % c for i in range(in_channels)]]
    elif c > in_channels:
        x = x[:, :, :in_channels]
    return np.ascontiguousarray(x.transpose(2, 0, 1), dtype=np.float32)


def _holdout_score(entry_id: str) -> int:
    # Salted so the choice is independent of the dataset's own split rule (which uses sha256[:8] % 5).
    return int(hashlib.sha256(f"segstudio-holdout:{entry_id}".encode()).hexdigest()[:8], 16)


def holdout_split(entry_ids: Sequence[str]) -> set[str]:
    """About 20% of `entry_ids`, chosen by a hash of the id (the same ids always give the same choice).

    At least one id is held out and at least one is kept when there are two or more.
    """
    ids = list(dict.fromkeys(entry_ids))
    if len(ids) < 2:
        return set()
    scored = sorted(ids, key=_holdout_score)
    held = {i for i in ids if _holdout_score(i) % 5 == 0}
    if not held:
        held = {scored[0]}
    if len(held) == len(ids):
        held.discard(scored[-1])
    return held


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
    train: list[_Item]
    val: list[_Item]
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
):
    """Read every entry of every dataset folder, normalised for a model with this input description."""
    from segstudio.core.dataset import load_entry, load_manifest, manifest_hash

    if not folders:
        raise TrainingError("No dataset folder given")
    prepare = _input_preparer()
    manifests: list[tuple[Path, dict]] = []
    for folder in folders:
        folder = Path(folder)
        try:
            manifests.append((folder, load_manifest(folder)))
        except Exception as e:  # noqa: BLE001 - any unreadable manifest gets the same clear message
            raise TrainingError(f"Cannot read dataset {folder}: {e}") from e
    classes = _class_table(manifests)
    notes: list[str] = []

    all_entries = [(folder, e) for folder, m in manifests for e in m.get("entries", [])]
    if not all_entries:
        raise TrainingError("The dataset folders contain no labelled images: " + ", ".join(map(str, folders)))
    val_ids: set[str] | None = None
    if not any(e.get("split") == "val" for _, e in all_entries):
        val_ids = holdout_split([str(e["id"]) for _, e in all_entries])
        if val_ids:
            notes.append(
                f"The datasets have no validation images; holding out {len(val_ids)} of "
                f"{len(all_entries)} images (chosen by a hash of their id) to check the new model"
            )

    train: list[_Item] = []
    val: list[_Item] = []
    sources: dict[str, np.ndarray] = {}  # raw pixels, in case a strip of each image must be held out
    for folder, entry in all_entries:
        if cancel is not None and cancel():
            raise _Cancelled
        key = f"{folder}:{entry['id']}"
        try:
            pixels, mask, hand = load_entry(folder, entry)
        except Exception as e:  # noqa: BLE001
            raise TrainingError(f"Cannot read dataset entry {entry.get('image', entry['id'])} in {folder}: {e}") from e
        mask = np.asarray(mask)
        if mask.shape[:2] != pixels.shape[:2]:
            raise TrainingError(f"Mask and image of {key} differ in size: {mask.shape[:2]} vs {pixels.shape[:2]}")
        top = int(mask.max()) if mask.size else 0
        if top >= num_classes:
            raise TrainingError(
                f"The mask of {key} uses class id {top}, but the model predicts only {num_classes} classes"
            )
        hand_map = np.zeros(mask.shape, bool) if hand is None else np.asarray(hand).astype(bool)
        image = torch.from_numpy(np.ascontiguousarray(prepare(pixels, in_channels, normalisation), np.float32))
        is_val = entry.get("split") == "val" if val_ids is None else str(entry["id"]) in val_ids
        raw = pixels if is_val and mask.size > val_whole_max_pixels else None
        (val if is_val else train).append(_Item(key, image, mask, hand_map, raw))
        sources[key] = pixels
    val_source = "dataset" if val_ids is None else "holdout"
    if not train or not val:
        # Too few images to hold whole ones out (a user's first fine-tune often has one or two):
        # train on most of every image and check the new model on a strip that training never sees.
        train, val = split_into_strips(train + val, sources, val_whole_max_pixels)
        val_source = "strip"
        notes.append(
            f"Only {len(all_entries)} labelled image(s) with no separate validation image; the last "
            f"{int(HOLDOUT_STRIP * 100)}% of each image (along its longer side) is held out to check the new model"
        )
    info = [
        {
            "path": str(folder.resolve()),
            "manifest_hash": manifest_hash(folder),
            "entries": len(m.get("entries", [])),
        }
        for folder, m in manifests
    ]
    return TrainingData(train, val, classes, info, val_source, notes)


HOLDOUT_STRIP = 0.2


def split_into_strips(items: Sequence[_Item], sources: dict[str, np.ndarray], val_whole_max_pixels: int):
    """Cut each image across its longer side: the first 80% trains, the last 20% validates.

    The strips never overlap, so the validation score is measured on pixels the model was not trained on.
    """
    train: list[_Item] = []
    val: list[_Item] = []
    for item in items:
        h, w = item.hw
        along_width = w >= h
        length = w if along_width else h
        held = max(1, int(round(length * HOLDOUT_STRIP)))
        if length - held < 1:
            raise TrainingError(f"Image {item.key} is too small to hold out a part of it for validation")
        cut = length - held
        first = (slice(None), slice(0, cut)) if along_width else (slice(0, cut), slice(None))
        last = (slice(None), slice(cut, None)) if along_width else (slice(cut, None), slice(None))
        train.append(_Item(item.key + " (training part)", item.image[(slice(None), *first)].contiguous(),
                           item.labels[first], item.hand[first]))
        labels = item.labels[last]
        raw = sources[item.key][last] if labels.size > val_whole_max_pixels else None
        val.append(_Item(item.key + " (held-out strip)", item.image[(slice(None), *last)].contiguous(), labels,
                         item.hand[last], raw))
    return train, val


class CropDataset(torch.utils.data.Dataset):
    """Random crops (padded where the image is smaller) with joint augmentation.

    Each image contributes about (area / crop area) crops per epoch, so an epoch covers the data about
    once whatever the image sizes. Sample index k encodes (epoch, i) as k = epoch * len + i and the crop
    position and augmentation are drawn from an RNG seeded by (seed, epoch, i): results do not depend on
    the number of loader processes, and persistent loader processes need no epoch updates.
    """

    def __init__(self, items: list[_Item], crop: int, *, augment: bool, strength: float,
                 hand_weight: float, seed: int):
        self.items = items
        self.crop = int(crop)
        self.hand_weight = float(hand_weight)
        self.seed = int(seed)
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
        return image.contiguous(), targets[LABEL].contiguous(), weight

    def _crop(self, item: _Item, rng: np.random.Generator):
        c = self.crop
        h, w = item.hw
        channels = item.image.shape[0]
        image = torch.zeros((channels, c, c), dtype=torch.float32)
        targets = torch.zeros((3, c, c), dtype=torch.int64)
        # Source window and destination offset per axis: crop inside big images, pad around small ones.
        (sy, dy, n_y), (sx, dx, n_x) = (_window(h, c, rng), _window(w, c, rng))
        image[:, dy:dy + n_y, dx:dx + n_x] = item.image[:, sy:sy + n_y, sx:sx + n_x]
        targets[LABEL, dy:dy + n_y, dx:dx + n_x] = torch.from_numpy(
            item.labels[sy:sy + n_y, sx:sx + n_x].astype(np.int64))
        targets[HAND, dy:dy + n_y, dx:dx + n_x] = torch.from_numpy(
            item.hand[sy:sy + n_y, sx:sx + n_x].astype(np.int64))
        targets[VALID, dy:dy + n_y, dx:dx + n_x] = 1
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


# --- loss and metrics ----------------------------------------------------------------------------
def segmentation_loss(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None,
                      *, dice_weight: float = 1.0, smooth: float = 1.0) -> torch.Tensor:
    """Weighted per-pixel cross-entropy + soft Dice (mean over classes, summed over the batch).

    `weight` (N, H, W) is 0 where a pixel must not count (padding, rotation fill) and larger than 1 on
    pixels the user painted by hand; Dice uses the same weights so both terms agree on what matters.
    """
    logits = logits.float()
    if weight is None:
        weight = torch.ones(target.shape, dtype=torch.float32, device=target.device)
    ce = F.cross_entropy(logits, target, reduction="none")
    total = weight.sum().clamp_min(1e-6)
    loss = (ce * weight).sum() / total
    if dice_weight > 0:
        num_classes = logits.shape[1]
        probs = logits.softmax(dim=1)
        onehot = F.one_hot(target, num_classes).permute(0, 3, 1, 2).to(probs.dtype)
        w = weight.unsqueeze(1)
        inter = (probs * onehot * w).sum(dim=(0, 2, 3))
        denom = ((probs + onehot) * w).sum(dim=(0, 2, 3))
        dice = (2.0 * inter + smooth) / (denom + smooth)
        loss = loss + dice_weight * (1.0 - dice.mean())
    return loss


def _metrics_from_confusion(conf: np.ndarray, classes: list[dict], loss_sum: float, loss_n: int,
                            images: int) -> dict:
    """IoU and Dice per class over the whole split (pixels pooled over images).

    mean_iou/mean_dice average the foreground classes that occur in the ground truth or the prediction;
    background only counts when nothing else occurs.
    """
    tp = np.diag(conf).astype(np.float64)
    fp = conf.sum(axis=0) - tp
    fn = conf.sum(axis=1) - tp
    iou: dict[str, float | None] = {}
    dice: dict[str, float | None] = {}
    fg_iou, fg_dice, bg = [], [], None
    for c in classes:
        cid = int(c["id"])
        name = str(c["name"]) if str(c["name"]) not in iou else f"{c['name']} ({cid})"
        if cid >= len(tp):
            iou[name] = dice[name] = None
            continue
        denom = tp[cid] + fp[cid] + fn[cid]
        if denom == 0:
            iou[name] = dice[name] = None
            continue
        iou[name] = float(tp[cid] / denom)
        dice[name] = float(2 * tp[cid] / (2 * tp[cid] + fp[cid] + fn[cid]))
        if cid == 0:
            bg = (iou[name], dice[name])
        else:
            fg_iou.append(iou[name])
            fg_dice.append(dice[name])
    if not fg_iou and bg is not None:
        fg_iou, fg_dice = [bg[0]], [bg[1]]
    return {
        "loss": (loss_sum / loss_n) if loss_n else None,
        "iou": iou,
        "dice": dice,
        "mean_iou": float(np.mean(fg_iou)) if fg_iou else None,
        "mean_dice": float(np.mean(fg_dice)) if fg_dice else None,
        "images": images,
    }


class _Evaluator:
    """Validation on whole images: a direct forward (which also gives the loss) for images up to
    `whole_max_pixels`, the tiled Predictor for larger ones (bounded memory, labels only)."""

    def __init__(self, meta, classes: list[dict], num_classes: int, device: torch.device,
                 amp_dtype: torch.dtype | None, whole_max_pixels: int, amp: bool):
        self.meta = meta
        self.classes = classes
        self.num_classes = num_classes
        self.device = device
        self.amp_dtype = amp_dtype
        self.whole_max_pixels = whole_max_pixels
        self.amp = amp
        self._predictor = None

    @torch.no_grad()
    def __call__(self, model: nn.Module, items: list[_Item], cancel: CancelFn | None = None) -> dict:
        model.eval()
        k = self.num_classes
        conf = torch.zeros(k * k, dtype=torch.int64, device=self.device)
        loss_sum, loss_n = 0.0, 0
        for item in items:
            if cancel is not None and cancel():
                raise _Cancelled
            target = torch.from_numpy(item.labels.astype(np.int64)).to(self.device)
            if item.raw is not None and self._predictor_for(model) is not None:
                labels = self._predictor_for(model).predict(item.raw, self._predict_settings()).labels
                pred = torch.from_numpy(np.asarray(labels).astype(np.int64)).to(self.device)
            else:
                logits = self._forward_whole(model, item.image)
                loss_sum += float(segmentation_loss(logits, target[None]).item())
                loss_n += 1
                pred = logits.argmax(dim=1)[0]
            conf += torch.bincount((target * k + pred.clamp(0, k - 1)).reshape(-1), minlength=k * k)
        return _metrics_from_confusion(conf.reshape(k, k).cpu().numpy(), self.classes, loss_sum, loss_n,
                                       len(items))

    def _forward_whole(self, model: nn.Module, image: torch.Tensor) -> torch.Tensor:
        # Pad to a multiple of 32 by reflection so every pooling stage sees whole cells, as on tiles.
        _, h, w = image.shape
        x = image[None].to(self.device)
        ph, pw = (-h) % 32, (-w) % 32
        if ph or pw:
            mode = "reflect" if ph < h and pw < w else "replicate"
            x = F.pad(x, (0, pw, 0, ph), mode=mode)
        with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32,
                            enabled=self.amp_dtype is not None):
            logits = model(x)
        return logits[:, :, :h, :w].float()

    def _predictor_for(self, model: nn.Module):
        if self._predictor is None:
            try:
                from segstudio.engine.predict import Predictor
            except ImportError:
                self._predictor = False
            else:
                self._predictor = Predictor(model, self.meta, device=str(self.device))
        return self._predictor or None

    def _predict_settings(self):
        from segstudio.engine.predict import PredictSettings

        return PredictSettings(device=str(self.device), amp=self.amp)


# --- helpers -------------------------------------------------------------------------------------
def _is_oom(e: BaseException) -> bool:
    if isinstance(e, torch.OutOfMemoryError):
        return True
    text = str(e).lower()
    return isinstance(e, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def _lr_at(step: int, total: int, base: float) -> float:
    """Short linear warm-up, then cosine decay to 5% of the base rate."""
    warm = min(50, max(1, total // 20))
    if step < warm:
        return base * (0.1 + 0.9 * step / warm)
    progress = min(1.0, (step - warm) / max(1, total - warm))
    return base * (0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * progress)))


def _round_up(n: int, multiple: int) -> int:
    return int(math.ceil(n / multiple) * multiple)


def _resolve_workers(requested: int, device: torch.device) -> int:
    if requested >= 0:
        return requested
    if device.type == "cuda":
        return max(1, min(4, (os.cpu_count() or 2) // 2))
    return 0


def _make_loader(dataset: CropDataset, batch: int, workers: int, ctx: DistContext, seed: int,
                 device: torch.device):
    if ctx.enabled:
        inner = torch.utils.data.DistributedSampler(
            range(len(dataset)), num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True, seed=seed)
    else:
        g = torch.Generator()
        g.manual_seed(seed)
        inner = torch.utils.data.RandomSampler(range(len(dataset)), generator=g)
    sampler = _EpochIndexSampler(inner, len(dataset))
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch, sampler=sampler, num_workers=workers,
        pin_memory=device.type == "cuda", persistent_workers=workers > 0, drop_last=False)
    return loader, sampler


# --- the fine-tune -------------------------------------------------------------------------------
def fine_tune(config: TrainConfig, *, progress: ProgressFn | None = None, cancel: CancelFn | None = None,
              library=None) -> TrainResult:
    """Fine-tune `config.base` on `config.data` and save the result as a new version.

    `progress(event)` receives the event dicts described in the CLI (start, evaluated, step, epoch, oom,
    done, error, cancelled); `cancel()` is polled at every step. Returns a TrainResult with status "done"
    or "cancelled"; raises TrainingError (after an "error" event) when training cannot finish. Under
    torchrun (WORLD_SIZE > 1) every rank calls this; only rank 0 reports, validates and writes.
    """
    ctx = DistContext.from_env()

    def emit(event: dict) -> None:
        if progress is not None and ctx.is_main:
            progress(event)

    try:
        # Activations of a training batch are large blocks; reusing freed ones saves the page faults
        # (see engine/hostmem.py).
        with keep_host_memory():
            return _fine_tune(config, ctx, emit, cancel, library)
    except _Cancelled:
        emit({"event": "cancelled"})
        return TrainResult(status="cancelled")
    except TrainingError as e:
        emit({"event": "error", "message": str(e)})
        raise
    except Exception as e:
        emit({"event": "error", "message": f"{type(e).__name__}: {e}"})
        raise
    finally:
        ctx.teardown()


def _fine_tune(config: TrainConfig, ctx: DistContext, emit, cancel: CancelFn | None, library) -> TrainResult:
    from segstudio.engine.devices import amp_dtype as device_amp_dtype
    from segstudio.engine.devices import pick_device
    from segstudio.models.checkpoint import save_checkpoint
    from segstudio.models.library import ModelLibrary

    t_start = time.perf_counter()
    if isinstance(config.data, (str, Path)):
        config = dataclasses.replace(config, data=[config.data])
    cancelled = (lambda: bool(cancel())) if cancel is not None else (lambda: False)
    if config.steps is None and config.epochs < 1:
        raise TrainingError("epochs must be at least 1")
    if config.steps is not None and config.steps < 1:
        raise TrainingError("steps must be at least 1")
    if config.batch_size < 1 or config.crop < 16:
        raise TrainingError("batch size must be at least 1 and crop at least 16 pixels")
    if not config.lr > 0 or config.hand_weight < 0:
        raise TrainingError("the learning rate must be above 0 and the hand-correction weight not below 0")
    if config.name is not None and not _NAME_RE.match(config.name):
        raise TrainingError(f"Invalid model name {config.name!r}: use letters, digits, '.', '_' or '-'")

    library = library if library is not None else ModelLibrary()
    try:
        model, parent_meta = library.load(config.base, device="cpu")
    except (ValueError, OSError) as e:
        raise TrainingError(f"Cannot load base model {config.base!r}: {e}") from e
    name = config.name or parent_meta.name
    num_classes = int(getattr(model, "config", {}).get("num_classes") or len(parent_meta.classes))

    device = ctx.setup(pick_device(config.device))
    amp = device_amp_dtype(device) if config.amp and device.type in ("cuda", "mps") else None
    torch.manual_seed(config.seed)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True

    # Under torchrun a rank must not leave alone before the first step (the others would wait for it);
    # a cancel there is agreed on at the first step instead.
    data = load_training_data(
        config.data, in_channels=int(parent_meta.in_channels), normalisation=dict(parent_meta.normalisation),
        num_classes=num_classes, val_whole_max_pixels=config.val_whole_max_pixels,
        cancel=None if ctx.enabled else cancelled)
    train_items, val_items, classes, notes = data.train, data.val, data.classes, data.notes

    # Images smaller than the crop would be mostly padding: shrink the crop to the largest image.
    largest = max(max(it.hw) for it in train_items)
    crop = min(int(config.crop), _round_up(largest, 16))
    if crop < config.crop:
        notes.append(f"crop reduced from {config.crop} to {crop} px: no training image is larger")
    batch = int(config.batch_size)

    model.to(device)
    frozen: list[nn.Module] = []
    if config.freeze_encoder:
        encoder = encoder_parameters(model)
        if not encoder:
            raise TrainingError(f"{parent_meta.id} ({parent_meta.arch}) has no encoder to freeze")
        frozen = [m for _, m in encoder_modules(model)]
        for p in encoder:
            p.requires_grad_(False)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.lr, weight_decay=config.weight_decay)
    scaler = torch.amp.GradScaler(device.type, enabled=amp == torch.float16)
    net = wrap_model(model, ctx, device)
    evaluator = _Evaluator(parent_meta, classes, num_classes, device, amp, config.val_whole_max_pixels,
                           config.amp)

    dataset = CropDataset(train_items, crop, augment=config.augment, strength=config.augment_strength,
                          hand_weight=config.hand_weight, seed=config.seed)
    workers = _resolve_workers(config.num_workers, device)
    loader, sampler = _make_loader(dataset, batch, workers, ctx, config.seed, device)

    def planned_steps(done_steps: int, epoch: int) -> int:
        if config.steps is not None:
            return int(config.steps)
        return done_steps + (config.epochs - epoch) * len(loader)

    total = planned_steps(0, 0)
    emit({
        "event": "start", "base": parent_meta.id, "name": name, "device": _device_label(device),
        "world_size": ctx.world_size, "train_images": len(train_items), "val_images": len(val_items),
        "val_source": data.val_source,
        "steps": total, "epochs": config.epochs if config.steps is None else None,
        "batch": batch, "crop": crop, "amp": str(amp).replace("torch.", "") if amp else None,
        "frozen_parameters": sum(p.numel() for p in model.parameters() if not p.requires_grad),
        "notes": list(notes),
    })

    val_s = 0.0
    parent_metrics = None
    if ctx.is_main:
        t0 = time.perf_counter()
        parent_metrics = evaluator(model, val_items, cancelled if not ctx.enabled else None)
        val_s += time.perf_counter() - t0
        emit({"event": "evaluated", "model": "parent", "val": parent_metrics})

    step, epoch, samples = 0, 0, 0
    train_s = train_cpu_s = 0.0
    val_runs = 1 if ctx.is_main else 0
    child_metrics = None
    last_report = -math.inf
    loss_sum = torch.zeros((), device=device)
    loss_count = 0
    while True:
        sampler.set_epoch(epoch)
        epoch_loss = torch.zeros((), device=device)
        epoch_batches = 0
        set_train_mode(net, frozen)
        t_epoch, cpu_epoch = time.perf_counter(), time.process_time()
        out_of_memory = False
        try:
            for x, y, w in loader:
                if not ctx.enabled and cancelled():
                    raise _Cancelled
                x = x.to(device, non_blocking=True)
                y = y.to(device, non_blocking=True)
                w = w.to(device, non_blocking=True)
                lr = _lr_at(step, total, config.lr)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
                    logits = net(x)
                loss = segmentation_loss(logits, y, w, dice_weight=config.dice_weight)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                step += 1
                samples += x.shape[0]
                detached = loss.detach()
                # A non-finite loss poisons these sums; they are checked whenever a number is read.
                loss_sum += detached
                epoch_loss += detached
                loss_count += 1
                epoch_batches += 1
                if ctx.enabled:
                    # Every rank must leave the loop at the same step or the others block forever.
                    stop, bad = ctx.any_flags([cancelled(), ~torch.isfinite(detached)], device)
                    if bad:
                        _raise_nonfinite(step, config)
                    if stop:
                        raise _Cancelled
                now = time.perf_counter()
                last_step = config.steps is not None and step >= total
                if ctx.is_main and (now - last_report >= config.progress_interval_s or step == 1 or last_step):
                    mean_loss = float(loss_sum.item()) / max(1, loss_count)
                    if not math.isfinite(mean_loss):
                        _raise_nonfinite(step, config)
                    per_step = (train_s + now - t_epoch) / step
                    epochs_left = math.ceil((total - step) / max(1, len(loader)))
                    eta = per_step * (total - step) + epochs_left * val_s / max(1, val_runs)
                    emit({"event": "step", "step": step, "steps": total, "epoch": epoch + 1,
                          "loss": mean_loss, "lr": lr, "eta_s": max(0.0, eta),
                          "images_per_s": (x.shape[0] / per_step) if per_step > 0 else None})
                    loss_sum.zero_()
                    loss_count = 0
                    last_report = now
                if last_step:
                    break
        except Exception as e:
            if not _is_oom(e):
                raise
            out_of_memory = True  # handled below, once the traceback (and the activations it holds) is gone
        if out_of_memory:
            train_s += time.perf_counter() - t_epoch
            train_cpu_s += time.process_time() - cpu_epoch
            x = y = w = logits = loss = detached = None  # noqa: F841 - release the failed batch
            batch, crop, action = _shrink_after_oom(batch, crop, ctx, device)
            del loader
            _free_memory(optimizer, device)
            emit({"event": "oom", "action": action, "batch": batch, "crop": crop})
            notes.append(f"out of memory: {action}")
            dataset = CropDataset(train_items, crop, augment=config.augment, strength=config.augment_strength,
                                  hand_weight=config.hand_weight, seed=config.seed)
            loader, sampler = _make_loader(dataset, batch, workers, ctx, config.seed, device)
            total = planned_steps(step, epoch)
            continue  # the same epoch again, with the smaller batch or crop
        train_s += time.perf_counter() - t_epoch
        train_cpu_s += time.process_time() - cpu_epoch
        epoch += 1
        mean_epoch_loss = None
        if epoch_batches:
            mean_epoch_loss = float(epoch_loss.item()) / epoch_batches
            if not math.isfinite(mean_epoch_loss):
                _raise_nonfinite(step, config)
        finished = step >= total if config.steps is not None else epoch >= config.epochs
        if ctx.is_main:
            t0 = time.perf_counter()
            child_metrics = evaluator(model, val_items, cancelled if not ctx.enabled else None)
            val_s += time.perf_counter() - t0
            val_runs += 1
            emit({"event": "epoch", "epoch": epoch, "epochs": config.epochs if config.steps is None else None,
                  "step": step, "train_loss": mean_epoch_loss, "val": child_metrics})
        if finished:
            break
        total = planned_steps(step, epoch)

    identical = ctx.replicas_identical(model, device)
    if not ctx.is_main:
        return TrainResult(status="done", steps=step, epochs=epoch, batch_size=batch, crop=crop,
                           replicas_identical=identical)
    if cancelled():
        raise _Cancelled
    if not all(bool(torch.isfinite(p).all()) for p in model.parameters()):
        _raise_nonfinite(step, config, "model's weights")

    # From here on the new version is written; a cancel arriving now is too late to matter.
    parent_iou = parent_metrics.get("mean_iou") if parent_metrics else None
    child_iou = child_metrics.get("mean_iou") if child_metrics else None
    better = child_iou is not None and (parent_iou is None or child_iou >= parent_iou)
    promote = bool(config.force_promote or better)
    path, version = library.next_version_path(name)
    path = Path(path)
    if path.exists():
        raise TrainingError(f"The model library already has {path}; refusing to overwrite it")
    timing = {"train_s": train_s, "train_cpu_s": train_cpu_s, "val_s": val_s, "samples": samples}
    settings = config.settings()
    settings.update({"effective_batch_size": batch, "effective_crop": crop, "world_size": ctx.world_size})
    child_meta = dataclasses.replace(
        parent_meta,
        name=name,
        version=int(version),
        classes=classes,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        parent=parent_meta.id,
        training={
            "datasets": data.datasets,
            "val_source": data.val_source,
            "settings": settings,
            "steps": step,
            "epochs": epoch,
            "train_images": len(train_items),
            "val_images": len(val_items),
            "notes": notes,
            "device": _device_label(device),
            "duration_s": round(time.perf_counter() - t_start, 2),
        },
        metrics={"val": child_metrics, "parent_val": parent_metrics},
        description=f"Fine-tuned from {parent_meta.id} on {len(train_items)} images",
    )
    model.to("cpu")
    model.eval()
    for p in model.parameters():
        p.requires_grad_(True)
    save_checkpoint(path, model, child_meta)
    if promote:
        library.set_active(child_meta.id)
    timing["total_s"] = time.perf_counter() - t_start
    emit({"event": "done", "version": child_meta.id, "path": str(path), "promoted": promote,
          "parent": parent_meta.id, "parent_metrics": parent_metrics, "child_metrics": child_metrics,
          "steps": step, "epochs": epoch, "replicas_identical": identical, "world_size": ctx.world_size,
          "timing": timing})
    return TrainResult(status="done", version=child_meta.id, path=path, promoted=promote,
                       parent_metrics=parent_metrics, child_metrics=child_metrics, steps=step, epochs=epoch,
                       batch_size=batch, crop=crop, notes=notes, timing=timing, replicas_identical=identical)


def _raise_nonfinite(step: int, config: TrainConfig, what: str = "training loss"):
    raise TrainingError(
        f"The {what} became NaN or infinite by step {step}; nothing was saved. "
        f"Try a lower learning rate than {config.lr:g}" + (" or full precision" if config.amp else "")
    )


def _shrink_after_oom(batch: int, crop: int, ctx: DistContext, device: torch.device):
    if ctx.enabled:
        # Ranks would have to agree on the new sizes mid-collective; ask the user instead.
        raise TrainingError(f"Out of memory on {device} with batch {batch} and crop {crop}: "
                            "restart with a smaller --batch or --crop")
    if batch > 1:
        new_batch = max(1, batch // 2)
        return new_batch, crop, f"retrying with batch {new_batch} (was {batch})"
    if crop > 32:
        new_crop = max(32, _round_up(crop // 2, 16))
        return batch, new_crop, f"retrying with crop {new_crop} px (was {crop})"
    raise TrainingError(f"Out of memory on {device} even with batch 1 and crop {crop} px; "
                        "nothing was saved")


def _free_memory(optimizer: torch.optim.Optimizer, device: torch.device) -> None:
    optimizer.zero_grad(set_to_none=True)
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _device_label(device: torch.device) -> str:
    try:
        from segstudio.engine.devices import device_label
    except ImportError:
        return str(device)
    return device_label(device)

