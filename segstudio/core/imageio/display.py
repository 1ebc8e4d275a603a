"""Making pixels visible: percentile stretching per channel, and the picture for the screen.

The same percentile normalisation prepares model input, so what the model sees matches what the user
sees. ``to_display_picture`` is what the window shows: one byte per pixel for a single channel (none at
all for 8-bit grey, whose stretch is a 256-entry table over the image's own pixels), three for colour.
``to_display_rgb`` gives the same picture as an (H, W, 3) copy.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# Percentiles are estimated from about this many pixels per channel, so big images normalise fast.
_PERCENTILE_SAMPLE_PIXELS = 1_000_000


def _strided_sample(pixels: np.ndarray) -> np.ndarray:
    height, width = pixels.shape[:2]
    step = max(1, math.ceil(math.sqrt(height * width / _PERCENTILE_SAMPLE_PIXELS)))
    return pixels[::step, ::step]


def percentile_bounds(pixels: np.ndarray, low: float = 1.0, high: float = 99.8, *,
                      per_channel: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) intensity per channel (shape (C,)), estimated on a strided subsample.

    Where the two percentiles coincide (a mostly empty channel) the channel's min and max are used,
    so sparse bright spots stay visible.
    """
    if not 0.0 <= low < high <= 100.0:
        raise ValueError(f"percentiles must satisfy 0 <= low < high <= 100, got {low} and {high}")
    array = np.asarray(pixels)
    if array.ndim == 2:
        array = array[:, :, np.newaxis]
    if array.ndim != 3:
        raise ValueError(f"expected (H, W) or (H, W, C) pixels, got shape {array.shape}")
    sample = _strided_sample(array).reshape(-1, array.shape[2] if per_channel else 1)
    if sample.dtype.kind == "f":
        sample = sample.astype(np.float64)
        sample[~np.isfinite(sample)] = np.nan
        percentile, minimum, maximum = np.nanpercentile, np.nanmin, np.nanmax
    else:  # integers hold no NaN, and the plain functions are several times faster
        sample = sample.astype(np.int64) if sample.dtype == bool else sample
        percentile, minimum, maximum = np.percentile, np.min, np.max
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN channels are handled below
        lo, hi = percentile(sample, [low, high], axis=0)
        flat = ~(hi > lo)
        if flat.any():
            lo = np.where(flat, minimum(sample, axis=0), lo)
            hi = np.where(flat, maximum(sample, axis=0), hi)
    lo = np.nan_to_num(np.asarray(lo, dtype=np.float64), nan=0.0)
    hi = np.nan_to_num(np.asarray(hi, dtype=np.float64), nan=1.0)
    if not per_channel:
        lo, hi = np.repeat(lo, array.shape[2]), np.repeat(hi, array.shape[2])
    return lo, hi


def percentile_normalize(pixels: np.ndarray, low: float = 1.0, high: float = 99.8, *,
                         per_channel: bool = True) -> np.ndarray:
    """Map the [low, high] percentile range to [0, 1] (float32, same shape, clipped).

    A dim 16-bit image (values 100..400) fills the range; NaN and infinities become 0.
    """
    array = np.asarray(pixels)
    lo, hi = percentile_bounds(array, low, high, per_channel=per_channel)
    if array.ndim == 2:
        lo, hi = lo[0], hi[0]
    return _stretch(array, lo, hi)


def _stretch(array: np.ndarray, lo, hi) -> np.ndarray:
    """Map [lo, hi] to [0, 1] as float32, clipped; the one formula the screen and the model share."""
    inverse_range = (1.0 / np.where(hi > lo, hi - lo, 1.0)).astype(np.float32)
    out = array.astype(np.float32)
    out -= np.asarray(lo, dtype=np.float32)
    out *= inverse_range
    if array.dtype.kind == "f":
        np.nan_to_num(out, copy=False, nan=0.0, posinf=1.0, neginf=0.0)
    np.clip(out, 0.0, 1.0, out=out)
    return out


def _to_uint8(scaled: np.ndarray) -> np.ndarray:
    scaled *= 255.0
    scaled += 0.5
    return scaled.astype(np.uint8)


@dataclass(frozen=True)
class DisplayPicture:
    """What the screen shows of an image, in as few bytes as the image allows.

    ``pixels`` is C-contiguous uint8, (H, W) for one channel or (H, W, 3) RGB, and may be the image's own
    pixels (nothing copied). ``grey_levels``, (256,) uint8 and only for (H, W) pixels, is the grey shown
    for each pixel value; None means each value is its own grey.
    """

    pixels: np.ndarray
    grey_levels: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return self.pixels.shape[:2]

    def rgb(self) -> np.ndarray:
        """The picture as an (H, W, 3) uint8 copy (for small pictures: thumbnails, checks)."""
        grey = self.pixels if self.grey_levels is None else self.grey_levels[self.pixels]
        return np.repeat(grey[:, :, np.newaxis], 3, axis=2) if grey.ndim == 2 else grey.copy()


def to_display_picture(pixels: np.ndarray, *, channels: Sequence[int] | None = None, low: float = 1.0,
                       high: float = 99.8) -> DisplayPicture:
    """The picture ``to_display_rgb`` makes, held without copies where it can be.

    One 8-bit channel: the image's own pixels and a table of 256 greys (the percentile stretch), so an
    8192 x 8192 slide costs 256 bytes to show, not 192 MiB. One 16-bit channel: one byte per pixel through
    a 65536-entry table, which also skips the float copy. Three 8-bit channels in order: the pixels
    themselves. Everything else: the (H, W, 3) copy.
    """
    array, channels = _chosen(pixels, channels)
    if len(channels) == 1 and array.dtype in (np.uint8, np.uint16):
        channel = np.ascontiguousarray(array[:, :, channels[0]])
        lo, hi = percentile_bounds(channel, low, high)
        levels = _to_uint8(_stretch(np.arange(np.iinfo(array.dtype).max + 1, dtype=array.dtype), lo[0], hi[0]))
        if array.dtype == np.uint8:
            return DisplayPicture(channel, levels)
        return DisplayPicture(levels[channel])
    if channels == [0, 1, 2] and array.shape[2] == 3 and array.dtype == np.uint8 and array.flags.c_contiguous:
        return DisplayPicture(array)
    shown = to_display_rgb(array, channels=channels, low=low, high=high)
    if len(channels) == 1:
        return DisplayPicture(np.ascontiguousarray(shown[:, :, 0]))
    return DisplayPicture(shown)


def _chosen(pixels: np.ndarray, channels: Sequence[int] | None) -> tuple[np.ndarray, list[int]]:
    """(H, W, C) pixels and the checked list of 1 to 3 channel indices to show."""
    array = np.asarray(pixels)
    if array.ndim == 2:
        array = array[:, :, np.newaxis]
    if array.ndim != 3:
        raise ValueError(f"expected (H, W) or (H, W, C) pixels, got shape {array.shape}")
    available = array.shape[2]
    if channels is None:
        channels = list(range(min(available, 3)))
    channels = [int(c) for c in channels]
    if not 1 <= len(channels) <= 3 or any(not 0 <= c < available for c in channels):
        raise ValueError(f"choose 1 to 3 channels out of 0..{available - 1}, got {channels}")
    return array, channels


def to_display_rgb(pixels: np.ndarray, *, channels: Sequence[int] | None = None, low: float = 1.0,
                   high: float = 99.8, stretch: bool | None = None) -> np.ndarray:
    """An (H, W, 3) uint8 picture of the image for the screen.

    One channel shows as grey, two as magenta/green, three as RGB. 8-bit colour pictures
    (brightfield, H&E) are shown as they are unless stretch=True; everything else is stretched per
    channel between the low and high percentiles.
    """
    array, channels = _chosen(pixels, channels)
    chosen = array[:, :, channels]
    if stretch is None:
        stretch = not (chosen.dtype == np.uint8 and len(channels) == 3)
    if stretch:
        chosen = _to_uint8(percentile_normalize(chosen, low, high))
    elif chosen.dtype != np.uint8:
        chosen = np.clip(chosen, 0, 255).astype(np.uint8)
    if len(channels) == 1:
        return np.repeat(chosen, 3, axis=2)
    if len(channels) == 2:  # magenta / green: readable for red-green colour blindness
        return np.ascontiguousarray(chosen[:, :, [0, 1, 0]])
    return np.ascontiguousarray(chosen)
