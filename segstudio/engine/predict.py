"""Sliding-window inference for images of any size, with bounded memory and an out-of-memory fallback.

The image is cut into overlapping tiles that run through the network in batches. Tiles are blended with
a smooth Gaussian window (high in the middle, small but never zero at the edges, where a convolution
sees padding instead of image): each tile's probabilities are scaled on the device by its share of the
total window weight at each pixel, so the host only adds shares up. Only a band of rows about one
tile-row high is kept as float32 sums; rows are turned into labels, confidence and uncertainty as soon
as no later tile can touch them. Host memory therefore grows with the image only through the small
per-pixel outputs, and the device only ever holds a batch of tiles.
"""
from __future__ import annotations

import contextlib
import gc
import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping

import numpy as np
import torch
from torch import nn

try:  # the levels the rest of the program uses for display and for training input
    from segstudio.core.imageio import percentile_bounds
except ImportError:
    percentile_bounds = None

from segstudio.core.postprocess import apply_postprocess
from segstudio.engine.devices import amp_dtype, device_label, pick_device, place_model, uses_channels_last
from segstudio.engine.hostmem import keep_host_memory

DEFAULT_NORMALISATION = {"kind": "percentile", "low": 1.0, "high": 99.8}

# Below this the network sees too little context per tile for its predictions to be worth having.
_MIN_FALLBACK_TILE = 64
# Finished rows are handed out in slabs this high, which bounds the scratch memory for summarising them.
_RELEASE_ROWS = 64
# Floor of the blending window along each axis (1e-6 in a corner), so pixels seen only near a tile's
# edge still get a usable weight.
_MIN_AXIS_WEIGHT = 1e-3

ProgressCallback = Callable[[int, int], None]
CancelCallback = Callable[[], bool]


class PredictionCancelled(Exception):
    """The caller asked to stop; nothing was produced, so it keeps its previous mask."""


@dataclass
class PredictSettings:
    tile: int = 512
    overlap: float = 0.25
    # Tiles per forward pass; 0 picks for the device: 4 on a GPU, 1 on the CPU, where batching gains nothing
    # (measured: the same time per tile) but multiplies the memory for activations and the wait for Cancel.
    batch: int = 0
    device: str = "auto"
    amp: bool = True
    # Tile sizes and positions are multiples of this, the total stride of the usual networks, so every
    # tile meets the same pooling grid as a whole-image pass would (and odd sizes pad cleanly).
    align: int = 32
    # Gaussian blending window: sigma as a fraction of the tile side (MONAI and nnU-Net use 1/8).
    sigma_scale: float = 0.125

    def validate(self) -> None:
        if int(self.tile) < 1:
            raise ValueError(f"tile must be at least 1 pixel, got {self.tile}")
        if not 0.0 <= float(self.overlap) < 1.0:
            raise ValueError(f"overlap must be in [0, 1), got {self.overlap}")
        if int(self.batch) < 0:
            raise ValueError(f"batch must be at least 1 (or 0 to pick for the device), got {self.batch}")
        if int(self.align) < 1:
            raise ValueError(f"align must be at least 1, got {self.align}")
        if not float(self.sigma_scale) > 0.0:
            raise ValueError(f"sigma_scale must be positive, got {self.sigma_scale}")


@dataclass
class PredictResult:
    labels: np.ndarray  # (H, W) uint8, or uint16 when a class id exceeds 255
    confidence: np.ndarray  # (H, W) float16: probability of the chosen class
    uncertainty: np.ndarray  # (H, W) float16: entropy of the class probabilities / log(num classes), in [0, 1]
    notes: list[str] = field(default_factory=list)
    device: str = "cpu"
    tiles: int = 0


# --- tiling -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TilePlan:
    """Where the tiles go. Coordinates are in the padded frame: rows/columns past the image are mirrored."""

    height: int
    width: int
    tile_h: int
    tile_w: int
    padded_h: int
    padded_w: int
    rows: tuple[int, ...]  # tile top edges
    cols: tuple[int, ...]  # tile left edges

    @property
    def origins(self) -> list[tuple[int, int]]:
        """(y, x) of every tile, row by row: the order tiles run in, which the band blending relies on."""
        return [(y, x) for y in self.rows for x in self.cols]

    @property
    def count(self) -> int:
        return len(self.rows) * len(self.cols)

    def source_index(self, y: int, x: int) -> tuple[slice | np.ndarray, slice | np.ndarray]:
        """Row and column indices into the image for the tile at (y, x), mirrored past the image edge."""
        return _axis_index(y, self.tile_h, self.height), _axis_index(x, self.tile_w, self.width)


def plan_tiles(height: int, width: int, tile: int = 512, overlap: float = 0.25, align: int = 32) -> TilePlan:
    """Tile layout for an image. An image that fits in one tile gets one tile, padded up to `align`."""
    if height < 1 or width < 1:
        raise ValueError(f"cannot predict an empty image ({height}x{width})")
    align = max(1, int(align))
    tile = max(align, int(tile) // align * align)
    tile_h, padded_h, rows = _plan_axis(height, tile, overlap, align)
    tile_w, padded_w, cols = _plan_axis(width, tile, overlap, align)
    return TilePlan(height, width, tile_h, tile_w, padded_h, padded_w, tuple(rows), tuple(cols))


def _plan_axis(length: int, tile: int, overlap: float, align: int) -> tuple[int, int, list[int]]:
    padded = _ceil_to(length, align)
    if padded <= tile:
        return padded, padded, [0]
    step = tile - int(round(tile * overlap))
    # Rounding the step down only adds overlap, never a gap.
    step = max(align, step // align * align)
    starts = list(range(0, padded - tile, step))
    starts.append(padded - tile)
    return tile, padded, starts


def _ceil_to(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def _axis_index(start: int, size: int, length: int) -> slice | np.ndarray:
    if start + size <= length:
        return slice(start, start + size)
    index = np.arange(start, start + size)
    if length == 1:
        return np.zeros_like(index)
    # Mirror without repeating the edge pixel (numpy's "reflect"), folding again for very short images.
    period = 2 * (length - 1)
    index %= period
    return np.where(index < length, index, period - index)


def _axis_window(n: int, sigma_scale: float) -> np.ndarray:
    offsets = np.arange(n, dtype=np.float64) - (n - 1) / 2.0
    window = np.exp(-0.5 * (offsets / max(sigma_scale * n, 1e-6)) ** 2)
    return np.maximum(window / window.max(), _MIN_AXIS_WEIGHT)


class _BlendFactors:
    """Each tile's window divided by the total window weight its pixels receive from all tiles.

    The window is separable and the tiles form a grid, so the total weight at (y, x) is rows(y) * cols(x):
    the division can happen per tile on the device, and blending on the host is a plain sum.
    """

    def __init__(self, plan: TilePlan, sigma_scale: float, device: torch.device):
        self.rows = self._axis(plan.rows, plan.tile_h, plan.padded_h, sigma_scale, device)
        self.cols = self._axis(plan.cols, plan.tile_w, plan.padded_w, sigma_scale, device)

    @staticmethod
    def _axis(starts, size, padded, sigma_scale, device) -> dict[int, torch.Tensor]:
        window = _axis_window(size, sigma_scale)
        total = np.zeros(padded, np.float64)
        for start in starts:
            total[start : start + size] += window
        return {
            start: torch.from_numpy((window / total[start : start + size]).astype(np.float32)).to(device)
            for start in starts
        }

    def for_batch(self, origins: list[tuple[int, int]]) -> torch.Tensor:
        """(N, 1, tile_h, tile_w) factors for the tiles at `origins`."""
        return torch.stack([torch.outer(self.rows[y], self.cols[x]) for y, x in origins])[:, None]


# --- input preparation ---------------------------------------------------------------------------
class ModelInput:
    """The image as the network sees it, cut out region by region.

    The channel mapping and the normalisation levels are fixed once for the whole image, so every tile is
    scaled alike (per-tile percentiles would make a dim tile look as bright as a bright one) and no
    full-size float copy of the image is ever made.
    """

    def __init__(self, pixels: np.ndarray, in_channels: int, normalisation: Mapping[str, Any] | None):
        pixels = np.asarray(pixels)
        if pixels.ndim == 2:
            pixels = pixels[:, :, None]
        if pixels.ndim != 3:
            raise ValueError(f"expected an image of shape (H, W, C), got {pixels.shape}")
        height, width, channels = pixels.shape
        if height < 1 or width < 1 or channels < 1:
            raise ValueError(f"cannot predict an empty image of shape {pixels.shape}")
        in_channels = int(in_channels)
        if in_channels < 1:
            raise ValueError(f"in_channels must be at least 1, got {in_channels}")
        if pixels.dtype.kind not in "biuf":
            raise ValueError(f"cannot use {pixels.dtype} pixels as network input")

        colour_to_grey = in_channels == 1 and channels in (3, 4)
        if channels == in_channels or (channels > in_channels and not colour_to_grey):
            self._mode, self._source_channels = "select", in_channels
        elif channels == 1:
            self._mode, self._source_channels = "repeat", 1
        elif in_channels == 1:
            # Colour (RGB, or RGBA whose alpha says nothing about the sample) to grey.
            self._mode, self._source_channels = "grey", 1
        else:
            raise ValueError(f"the model expects {in_channels} channels but the image has {channels}")
        self.pixels = pixels
        self.in_channels = in_channels
        self.height, self.width = height, width
        self._float_source = pixels.dtype.kind == "f"
        self._offset, self._scale = self._levels(dict(normalisation or {"kind": "none"}))

    def region(self, rows: slice | np.ndarray, cols: slice | np.ndarray) -> np.ndarray:
        """float32 (in_channels, h, w) network input for the given image rows and columns."""
        block = self.pixels[rows][:, cols]
        values = self._map_channels(block)
        if self._offset is not None:
            values -= self._offset
            values /= self._scale
            if self._float_source:
                np.nan_to_num(values, copy=False, nan=0.0, posinf=1.0, neginf=0.0)
            np.clip(values, 0.0, 1.0, out=values)
        elif self._float_source:
            np.nan_to_num(values, copy=False, nan=0.0)
        if self._mode == "repeat" and self.in_channels > 1:
            values = np.repeat(values, self.in_channels, axis=0)
        return values

    def _map_channels(self, block: np.ndarray) -> np.ndarray:
        if self._mode == "grey":
            return block[..., :3].mean(axis=-1, dtype=np.float32)[None]
        picked = block[..., : self._source_channels]
        return np.ascontiguousarray(np.moveaxis(picked, -1, 0), dtype=np.float32)

    def _levels(self, normalisation: dict) -> tuple[np.ndarray | None, np.ndarray | None]:
        kind = normalisation.get("kind", "none")
        if kind == "none":
            return None, None
        if kind != "percentile":
            raise ValueError(f"unknown normalisation kind {kind!r} (expected 'percentile' or 'none')")
        low = float(normalisation.get("low", DEFAULT_NORMALISATION["low"]))
        high = float(normalisation.get("high", DEFAULT_NORMALISATION["high"]))
        if not 0.0 <= low < high <= 100.0:
            raise ValueError(f"percentile normalisation needs 0 <= low < high <= 100, got {low}, {high}")
        if self._mode == "grey":
            values = np.moveaxis(self._map_channels(self.pixels), 0, -1)
        else:
            values = self.pixels[..., : self._source_channels]
        bounds = percentile_bounds or _sampled_percentile_bounds
        lo, hi = (np.asarray(v, np.float64).reshape(-1) for v in bounds(values, low, high))
        # A constant channel has no contrast to stretch: keep its offset from the level unscaled.
        scale = np.where(hi > lo, hi - lo, 1.0)
        shape = (self._source_channels, 1, 1)
        return lo.astype(np.float32).reshape(shape), scale.astype(np.float32).reshape(shape)


def _sampled_percentile_bounds(values: np.ndarray, low: float, high: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (low, high) percentiles of (H, W, C) values, estimated on a strided subsample.

    Used when segstudio.core.imageio.percentile_bounds is not present; same rules: about a million
    sampled pixels, non-finite values ignored, and a channel whose two percentiles coincide uses its
    minimum and maximum instead.
    """
    step = max(1, math.ceil(math.sqrt(values.shape[0] * values.shape[1] / 1_000_000)))
    sample = values[::step, ::step].reshape(-1, values.shape[2]).astype(np.float64)
    sample[~np.isfinite(sample)] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN channels become 0..1 below
        lo, hi = np.nanpercentile(sample, [low, high], axis=0)
        flat = ~(hi > lo)
        if flat.any():
            lo = np.where(flat, np.nanmin(sample, axis=0), lo)
            hi = np.where(flat, np.nanmax(sample, axis=0), hi)
    return np.nan_to_num(lo, nan=0.0), np.nan_to_num(hi, nan=1.0)


def prepare_input(pixels: np.ndarray, in_channels: int, normalisation: Mapping[str, Any] | None) -> np.ndarray:
    """Whole image as float32 (in_channels, H, W) network input.

    Grey images are repeated when the model wants more channels; colour becomes grey (channel mean) for
    one-channel models; extra channels beyond the model's are dropped. Normalisation is
    {"kind": "percentile", "low": 1.0, "high": 99.8} (per channel, clipped to [0, 1]) or {"kind": "none"}.
    """
    source = ModelInput(pixels, in_channels, normalisation)
    return source.region(slice(None), slice(None))


# --- blending -------------------------------------------------------------------------------------
class _BandBlender:
    """Blended probabilities for a band of rows; rows leave the band once no later tile can reach them.

    The sums live in a numpy array, or on `device` as a tensor when blending happens there (a GPU then
    sends only labels, confidence and uncertainty to the host, not every tile's probabilities).
    """

    def __init__(self, plan: TilePlan, band_h: int, device: torch.device | None = None):
        self.plan = plan
        self.band_h = band_h
        self.device = device
        self.sums = None  # (classes, band_h, padded_w) float32, made when the class count is known
        self.top = 0  # padded-frame row held in band row 0

    def add(self, y: int, x: int, share) -> None:
        """Add a tile's probabilities, already scaled by its share of each pixel's total weight."""
        if self.sums is None:
            shape = (share.shape[0], self.band_h, self.plan.padded_w)
            self.sums = (np.zeros(shape, np.float32) if self.device is None
                         else torch.zeros(shape, dtype=torch.float32, device=self.device))
        r = y - self.top
        self.sums[:, r : r + self.plan.tile_h, x : x + self.plan.tile_w] += share

    def release_until(self, row: int, slab_rows: int = _RELEASE_ROWS) -> Iterator[tuple[int, Any]]:
        """Finish rows [top, row): (first_row, blended probabilities (classes, n, width)) cropped to the image.

        Rows come out `slab_rows` at a time, so summarising them needs little scratch memory. Each slab is a
        view into the band: use it (or copy it) before asking for the next one.
        """
        count = row - self.top
        if count <= 0 or self.sums is None:
            return
        inside = min(count, self.plan.height - self.top)
        for start in range(0, max(inside, 0), slab_rows):
            stop = min(inside, start + slab_rows)
            yield self.top + start, self.sums[:, start:stop, : self.plan.width]
        self._shift_up(count)
        self.top = row

    def _shift_up(self, count: int) -> None:
        keep = self.band_h - count
        for plane in self.sums:
            # Blocks of at most `count` rows never overlap their source, so no temporary copy is needed.
            for start in range(0, max(keep, 0), count):
                stop = min(keep, start + count)
                plane[start:stop] = plane[start + count : stop + count]
            plane[max(keep, 0) :] = 0.0


def _band_height(plan: TilePlan, batches: list[list[tuple[int, int]]]) -> int:
    """Rows a batch can reach beyond the first row still open when it lands."""
    return max(batch[-1][0] + plan.tile_h - batch[0][0] for batch in batches)


def _summarise_into(probs: np.ndarray, lut: np.ndarray | None, labels, confidence, uncertainty) -> None:
    """Labels, max probability and normalised entropy of (classes, rows, width) probabilities.

    One pass per class plane with a few cheap ufuncs each: for the usual few classes this is several times
    faster than argmax over axis 0 or a masked copy. Ties keep the lower class, as argmax does.
    `lut` maps output index to class id and has the labels' dtype.
    """
    classes = probs.shape[0]
    index_type = np.uint8 if classes <= 256 else np.uint16 if classes <= 65536 else np.int64
    best = np.zeros(probs.shape[1:], index_type)
    candidate = np.empty_like(best)
    best_value = probs[0].copy()
    entropy = np.zeros(probs.shape[1:], np.float32)
    scratch = np.empty_like(best_value)
    better = np.empty(probs.shape[1:], bool)
    for c in range(classes):
        plane = probs[c]
        if c:
            np.greater(plane, best_value, out=better)  # strict: ties keep the lower class
            # Planes come in increasing class order, so where this one wins, c exceeds every label chosen so
            # far: max(best, better * c) is where(better, c, best).
            np.multiply(better, index_type(c), out=candidate)
            np.maximum(best, candidate, out=best)
            np.maximum(best_value, plane, out=best_value)
        np.maximum(plane, 1e-12, out=scratch)
        np.log(scratch, out=scratch)
        scratch *= plane
        entropy -= scratch
    if lut is not None:
        np.take(lut, best, out=labels, mode="clip")  # indices are in range; "clip" avoids a buffered copy
    else:
        labels[...] = best
    _store_half(confidence, best_value)
    if classes < 2:
        uncertainty[...] = 0.0
        return
    entropy *= 1.0 / math.log(classes)
    np.clip(entropy, 0.0, 1.0, out=entropy)
    _store_half(uncertainty, entropy)


def _store_half(target: np.ndarray, values: np.ndarray) -> None:
    """float32 into a float16 array. torch converts with the CPU's conversion instructions; numpy's cast is
    about 50 times slower, which made it the largest cost of summarising."""
    torch.from_numpy(target).copy_(torch.from_numpy(values))


def _summarise_tensor(probs: torch.Tensor, lut: torch.Tensor | None):
    """Device-side twin of _summarise_into: (labels, confidence float16, uncertainty float16) tensors.

    Labels come as uint8 when the lut is uint8 (or there are at most 256 classes without one), else int32.
    """
    classes = probs.shape[0]
    best_value, best = probs.max(dim=0)  # the first maximum on ties, as argmax
    if lut is not None:
        labels = lut[best]
    else:
        labels = best.to(torch.uint8 if classes <= 256 else torch.int32)
    if classes < 2:
        uncertainty = torch.zeros_like(best_value)
    else:
        # entr(p) = -p log p, and 0 at p = 0, as the host path's log(max(p, 1e-12)) gives
        uncertainty = torch.special.entr(probs).sum(dim=0).mul_(1.0 / math.log(classes)).clamp_(0.0, 1.0)
    return labels, best_value.half(), uncertainty.half()


def _blend_on_device(device: torch.device) -> bool:
    """Whether to blend and summarise where the network runs (GPUs) rather than on the host (CPU)."""
    return device.type in ("cuda", "mps")


# Largest band of sums kept on the device; a wider image blends on the host instead, so GPU memory never
# grows past this with the image (about 12,000 px wide for 3 classes at 512 px tiles and 25% overlap).
_DEVICE_BAND_BYTES = 128 << 20
# Rows summarised per call on the device: bigger slabs mean fewer, larger kernels.
_DEVICE_SLAB_ROWS = 512


# --- the predictor --------------------------------------------------------------------------------
class Predictor:
    """A model kept on its device between calls, predicting masks for whole images."""

    def __init__(self, model: nn.Module, meta: Any = None, device: str | torch.device = "auto"):
        self.device = pick_device(device)
        self.model = place_model(model, self.device)
        self.meta = meta
        self.in_channels = int(getattr(meta, "in_channels", 0) or _infer_in_channels(model))
        self.normalisation = dict(getattr(meta, "normalisation", None) or DEFAULT_NORMALISATION)
        classes = getattr(meta, "classes", None) or []
        self.class_ids = [int(c["id"]) for c in classes] or None

    @property
    def device_label(self) -> str:
        return device_label(self.device)

    def to(self, device: str | torch.device) -> None:
        """Move the model to another device and keep it there for later calls."""
        self.device = pick_device(device)
        self.model = place_model(self.model, self.device)

    def predict(
        self,
        pixels: np.ndarray,
        settings: PredictSettings | None = None,
        progress: ProgressCallback | None = None,
        cancel: CancelCallback | None = None,
    ) -> PredictResult:
        """Labels, confidence and uncertainty for an (H, W, C) image.

        progress(done_tiles, total_tiles) is called after each batch; cancel() is asked before each batch
        and returning True raises PredictionCancelled. When the device runs out of memory the image is
        run again with half the batch, then smaller tiles, then on the CPU; result.notes says what happened.
        """
        settings = settings or PredictSettings()
        settings.validate()
        self._follow_device_setting(settings)
        source = ModelInput(pixels, self.in_channels, self.normalisation)
        notes: list[str] = []
        tile, batch, device = _aligned_tile(settings), _batch_for(settings, self.device), self.device
        if tile != settings.tile:
            notes.append(f"Tile size {settings.tile} rounded to {tile}, a multiple of {settings.align}.")
        while True:
            plan = plan_tiles(source.height, source.width, tile, settings.overlap, settings.align)
            try:
                result = self._predict_once(source, plan, batch, device, settings, progress, cancel, notes)
                apply_postprocess(result.labels, getattr(self.meta, "postprocess", None))
                return result
            except RuntimeError as error:  # torch.cuda.OutOfMemoryError is one
                if not _is_out_of_memory(error):
                    raise
                fallback = self._fallback(plan, batch, device, settings)
                if fallback is None:
                    raise
                notes.append(
                    f"Out of memory on {device} with {tile} px tiles in batches of {batch}; "
                    f"retried with {fallback[0]} px tiles in batches of {fallback[1]} on {fallback[2]}."
                )
                tile, batch, device = fallback
            # Out of the except block the failed attempt's tensors are unreachable and can be freed.
            _release_cached_memory(self.device)

    def iter_probabilities(
        self,
        pixels: np.ndarray,
        settings: PredictSettings | None = None,
        progress: ProgressCallback | None = None,
        cancel: CancelCallback | None = None,
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Blended class probabilities band by band: yields (first_row, float32 (classes, rows, W)).

        Bands come top to bottom and cover the image once, so a caller can stream per-class probability
        maps of a huge image to disk. There is no out-of-memory fallback here; predict() has one.
        """
        settings = settings or PredictSettings()
        settings.validate()
        self._follow_device_setting(settings)
        source = ModelInput(pixels, self.in_channels, self.normalisation)
        plan = plan_tiles(source.height, source.width, settings.tile, settings.overlap, settings.align)
        with keep_host_memory():
            for row, probs in self._probability_bands(self.model, source, plan, _batch_for(settings, self.device),
                                                      self.device, settings, progress, cancel):
                # The slab is a view into the blending band, which moves on: give the caller its own copy.
                if isinstance(probs, torch.Tensor):
                    yield row, probs.to("cpu", copy=True).numpy()
                else:
                    yield row, probs.copy()

    # --- internals --------------------------------------------------------------------------------
    def _follow_device_setting(self, settings: PredictSettings) -> None:
        if settings.device and str(settings.device).lower() != "auto":
            wanted = pick_device(settings.device)
            if wanted != self.device:
                self.to(wanted)

    def _fallback(self, plan: TilePlan, batch: int, device: torch.device, settings: PredictSettings):
        """Next (tile, batch, device) to try after running out of memory, or None when nothing is left."""
        tile = max(plan.tile_h, plan.tile_w)
        if batch > 1:
            return tile, batch // 2, device
        smaller = tile // 2 // settings.align * settings.align
        if smaller >= max(_MIN_FALLBACK_TILE, settings.align):
            return smaller, 1, device
        if device.type != "cpu":
            # Host memory is plentiful next to a GPU's: go back to the sizes the caller asked for.
            cpu = torch.device("cpu")
            return _aligned_tile(settings), _batch_for(settings, cpu), cpu
        return None

    def _predict_once(self, source, plan, batch, device, settings, progress, cancel, notes) -> PredictResult:
        model = self.model
        if device != self.device:
            model = place_model(self.model, device)
        out = None
        try:
            with keep_host_memory():
                for row, probs in self._probability_bands(model, source, plan, batch, device, settings, progress,
                                                          cancel):
                    if out is None:
                        out = _Outputs(source.height, source.width, self._label_lut(probs.shape[0], notes))
                    out.add(row, probs)
                out.finish()
        finally:
            if device != self.device:
                place_model(self.model, self.device)
        return PredictResult(out.labels, out.confidence, out.uncertainty, notes, str(device), plan.count)

    def _label_lut(self, classes: int, notes: list[str]) -> np.ndarray | None:
        """Output channel -> class id, when the model's metadata names the classes."""
        if not self.class_ids:
            return None
        if len(self.class_ids) != classes:
            notes.append(
                f"The model has {classes} outputs but its metadata lists {len(self.class_ids)} classes; "
                "labels are output indices."
            )
            return None
        return np.asarray(self.class_ids, dtype=np.int64)

    def _probability_bands(self, model, source, plan, batch_size, device, settings, progress, cancel):
        """Blended probabilities, top to bottom: (first_row, (classes, rows, width) numpy array or tensor).

        On a GPU the band of sums stays on the device (while it fits in _DEVICE_BAND_BYTES) and slabs are
        tensors there; otherwise they are numpy arrays. A slab is only valid until the generator resumes.
        """
        factors = _BlendFactors(plan, settings.sigma_scale, device)
        origins = plan.origins
        batches = [origins[i : i + batch_size] for i in range(0, len(origins), batch_size)]
        band_h = _band_height(plan, batches)
        blender = None
        # None until the first batch shows the class count: results stay on the device until then.
        to_host = None if _blend_on_device(device) else True
        total, done = len(origins), 0
        precision = amp_dtype(device) if settings.amp else None

        # One batch stays in flight: on a GPU the host prepares batch k+1 while batch k computes.
        in_flight = None
        for batch in batches + [None]:
            launched = None
            if batch is not None:
                if cancel is not None and cancel():
                    raise PredictionCancelled()
                tiles = np.stack([source.region(*plan.source_index(y, x)) for y, x in batch])
                launched = (batch, self._launch(model, tiles, device, factors.for_batch(batch), precision,
                                                to_host=bool(to_host)))
            if in_flight is not None:
                finished_batch, pending = in_flight
                shares = pending()
                if blender is None:
                    classes = shares.shape[1]
                    on_device = not to_host and classes * band_h * plan.padded_w * 4 <= _DEVICE_BAND_BYTES
                    to_host = not on_device
                    blender = _BandBlender(plan, band_h, device if on_device else None)
                    slab_rows = _DEVICE_SLAB_ROWS if on_device else _RELEASE_ROWS
                if to_host and isinstance(shares, torch.Tensor):
                    shares = shares.cpu().numpy()  # launched before the blending place was known
                yield from blender.release_until(finished_batch[0][0], slab_rows)
                for (y, x), share in zip(finished_batch, shares):
                    blender.add(y, x, share)
                done += len(finished_batch)
                if progress is not None:
                    progress(done, total)
            in_flight = launched
        if blender is not None:
            yield from blender.release_until(plan.padded_h, slab_rows)

    @staticmethod
    def _launch(model, tiles: np.ndarray, device, factors, precision, to_host: bool) -> Callable[[], Any]:
        """Start a batch; the returned callable waits for it and gives each tile's share of the blend.

        The shares come as a numpy array when `to_host`, else as a tensor left on the device.
        """
        x = torch.from_numpy(tiles)
        if device.type == "cuda":
            # From pinned memory the upload is truly asynchronous; from pageable memory CUDA first waits for
            # all queued work, which would stop the host preparing tiles while the GPU computes.
            x = x.pin_memory().to(device, non_blocking=True)
        elif device.type != "cpu":
            x = x.to(device)
        if uses_channels_last(device):
            x = x.contiguous(memory_format=torch.channels_last)
        autocast = (torch.autocast(device.type, dtype=precision) if precision is not None
                    else contextlib.nullcontext())
        with torch.inference_mode(), autocast:
            logits = model(x)
        if logits.ndim != 4 or logits.shape[0] != x.shape[0] or logits.shape[-2:] != x.shape[-2:]:
            raise ValueError(
                f"the model returned {tuple(logits.shape)} for tiles of {tuple(x.shape)}; expected "
                "(N, classes, H, W) at the input size"
            )
        with torch.inference_mode():
            logits = logits.float()
            if logits.shape[1] == 1:  # a single logit is a foreground score
                foreground = torch.sigmoid(logits)
                probs = torch.cat([1.0 - foreground, foreground], dim=1)
            else:
                probs = torch.softmax(logits, dim=1)
            probs *= factors
            if not to_host:
                if device.type == "cuda":
                    # Waiting for batch k while batch k+1 computes keeps at most two batches queued.
                    done = torch.cuda.Event()
                    done.record()

                    def finished() -> torch.Tensor:
                        done.synchronize()
                        return probs

                    return finished
                return lambda: probs
            if device.type == "cuda":
                host = probs.to("cpu", non_blocking=True)  # lands in pinned memory, asynchronously
                ready = torch.cuda.Event()
                ready.record()

                def wait() -> np.ndarray:
                    ready.synchronize()
                    return host.numpy()

                return wait
            host = probs.cpu().numpy()
        return lambda: host


class _Outputs:
    """The image-sized labels, confidence and uncertainty, filled slab by slab.

    Device slabs are summarised on the device; on CUDA their (small) results come back asynchronously, so
    the GPU keeps computing while earlier rows travel to the host.
    """

    def __init__(self, height: int, width: int, lut: np.ndarray | None):
        largest_id = int(lut.max()) if lut is not None else None
        self._lut_ids = lut
        self._largest = largest_id
        self.labels = self.confidence = self.uncertainty = None
        self.height, self.width = height, width
        self._lut = None  # lut in the labels' dtype (host) or on the device
        self._in_transit: list = []

    def _make(self, classes: int) -> None:
        largest = self._largest if self._largest is not None else classes - 1
        dtype = np.uint8 if largest <= 255 else np.uint16
        self.labels = np.zeros((self.height, self.width), dtype)
        self.confidence = np.zeros((self.height, self.width), np.float16)
        self.uncertainty = np.zeros((self.height, self.width), np.float16)
        self._lut = self._lut_ids.astype(dtype) if self._lut_ids is not None else None

    def add(self, row: int, probs) -> None:
        if self.labels is None:
            self._make(probs.shape[0])
        rows = slice(row, row + probs.shape[1])
        if not isinstance(probs, torch.Tensor):
            _summarise_into(probs, self._lut, self.labels[rows], self.confidence[rows], self.uncertainty[rows])
            return
        if self._lut is not None and not isinstance(self._lut, torch.Tensor):
            # uint8 ids stay uint8 on the device; larger ids travel as int32
            ids = self._lut.astype(np.uint8 if self.labels.dtype == np.uint8 else np.int32)
            self._lut = torch.from_numpy(ids).to(probs.device)
        with torch.inference_mode():
            summary = _summarise_tensor(probs, self._lut)
            if probs.device.type == "cuda":
                host = [t.to("cpu", non_blocking=True) for t in summary]
                ready = torch.cuda.Event()
                ready.record()
                self._in_transit.append((rows, host, ready))
                while self._in_transit and self._in_transit[0][2].query():
                    self._store(*self._in_transit.pop(0)[:2])
                return
            self._store(rows, [t.cpu() for t in summary])

    def _store(self, rows: slice, host) -> None:
        labels, confidence, uncertainty = (t.numpy() for t in host)
        self.labels[rows] = labels  # int32 ids (more than 255) fit the uint16 labels
        self.confidence[rows] = confidence
        self.uncertainty[rows] = uncertainty

    def finish(self) -> None:
        for rows, host, ready in self._in_transit:
            ready.synchronize()
            self._store(rows, host)
        self._in_transit.clear()


def _aligned_tile(settings: PredictSettings) -> int:
    align = int(settings.align)
    return max(align, int(settings.tile) // align * align)


def _batch_for(settings: PredictSettings, device: torch.device) -> int:
    if int(settings.batch) >= 1:
        return int(settings.batch)
    return 1 if device.type == "cpu" else 4


def _infer_in_channels(model: nn.Module) -> int:
    config = getattr(model, "config", None)
    if isinstance(config, Mapping) and config.get("in_channels"):
        return int(config["in_channels"])
    for module in model.modules():
        if isinstance(module, nn.modules.conv._ConvNd):
            return int(module.in_channels)
    raise ValueError("cannot tell how many input channels the model takes; pass its metadata")


def _is_out_of_memory(error: BaseException) -> bool:
    if isinstance(error, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(error, RuntimeError) and "out of memory" in str(error).lower()


def _release_cached_memory(device: torch.device) -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    mps = getattr(torch, "mps", None)
    if device.type == "mps" and mps is not None:
        mps.empty_cache()
