"""Where the tissue is on a slide: a mask from a low pyramid level, so prediction skips the glass.

A slide is mostly glass. The glass colour is the most common colour of the overview; tissue is what
differs from it clearly, in brightness or in saturation (stained tissue is coloured, glass is not, and a
fluorescence slide's dark background differs from its bright cells in brightness). Otsu's threshold on
that difference separates the two without a fixed level, and a dilation keeps the rim of each patch.
A tile of level-0 pixels is predicted when any of its pixels is tissue in this mask.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import cv2
import numpy as np

# The mask is made from the coarsest level with at least this many pixels on its longer side.
MASK_SIDE = 2048
# A difference from the glass below this (0-255 scale) is never tissue, even if Otsu says so (a blank slide).
_MIN_CONTRAST = 12


@dataclass(frozen=True)
class TissueMap:
    """A boolean tissue mask and the level-0 pixels per mask pixel."""

    mask: np.ndarray
    downsample: float
    # The overview the mask was made from (the slide at about MASK_SIDE a side), kept so prediction measures
    # its normalisation levels on it instead of reading the slide's overview a second time.
    overview: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def fraction(self) -> float:
        return float(self.mask.mean()) if self.mask.size else 0.0

    def any_in(self, y0: int, x0: int, h: int, w: int) -> bool:
        """Whether the level-0 box holds any tissue."""
        ds = self.downsample
        ya, xa = max(0, int(y0 // ds)), max(0, int(x0 // ds))
        yb, xb = math.ceil((y0 + h) / ds), math.ceil((x0 + w) / ds)
        return bool(self.mask[ya:yb, xa:xb].any())

    def any_in_boxes(self, ys: np.ndarray, xs: np.ndarray, h: int, w: int) -> np.ndarray:
        """``any_in`` for many level-0 boxes of one size at once (the tiles of a plan): a boolean per box,
        from the mask's summed-area table (four lookups a box, whatever its size)."""
        ds = self.downsample
        height, width = self.mask.shape
        ys, xs = np.asarray(ys, np.float64), np.asarray(xs, np.float64)
        ya = np.clip(np.floor(ys / ds), 0, height).astype(np.int64)
        xa = np.clip(np.floor(xs / ds), 0, width).astype(np.int64)
        yb = np.clip(np.ceil((ys + h) / ds), 0, height).astype(np.int64)
        xb = np.clip(np.ceil((xs + w) / ds), 0, width).astype(np.int64)
        yb, xb = np.maximum(ya, yb), np.maximum(xa, xb)
        table = self._summed_area
        return (table[yb, xb] - table[ya, xb] - table[yb, xa] + table[ya, xa]) > 0

    @functools.cached_property
    def _summed_area(self) -> np.ndarray:
        return cv2.integral(self.mask.astype(np.uint8), sdepth=cv2.CV_64F).astype(np.int64)

    @classmethod
    def everywhere(cls, height: int, width: int) -> TissueMap:
        return cls(np.ones((1, 1), bool), float(max(height, width)))


def tissue_mask(pixels: np.ndarray, dilate: int = 2) -> np.ndarray:
    """Boolean mask of what differs clearly from the glass in an (H, W, C) uint8 overview."""
    rgb = pixels if pixels.ndim == 3 else pixels[..., None]
    rgb = rgb[..., :3] if rgb.shape[2] >= 3 else np.repeat(rgb[..., :1], 3, axis=2)
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    value = hsv[..., 2].astype(np.int16)
    glass = int(np.bincount(value.ravel(), minlength=256).argmax())
    contrast = np.maximum(np.abs(value - glass), hsv[..., 1].astype(np.int16)).clip(0, 255).astype(np.uint8)
    if int(contrast.max()) < _MIN_CONTRAST:
        return np.zeros(contrast.shape, bool)
    level, _ = cv2.threshold(contrast, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    mask = contrast > max(level, _MIN_CONTRAST)
    if dilate > 0:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * dilate + 1, 2 * dilate + 1))
        mask = cv2.dilate(mask.astype(np.uint8), kernel).astype(bool)
    return mask


def overview(slide, max_side: int = MASK_SIDE) -> np.ndarray:
    """The whole slide at about ``max_side`` pixels a side (at least ``max_side`` when the levels allow),
    read band by band from the coarsest level that has that many, so memory stays flat in slide size."""
    level = 0
    for index, lv in enumerate(slide.levels):
        if max(lv.width, lv.height) >= max_side or index == 0:
            level = index
    lv = slide.levels[level]
    step = max(1, math.ceil(max(lv.width, lv.height) / max_side))
    rows = 256 * step  # a band of rows a multiple of the step, so the kept rows line up
    bands = [slide.read_region(level, 0, y, lv.width, min(rows, lv.height - y))[::step, ::step]
             for y in range(0, lv.height, rows)]
    return np.ascontiguousarray(np.concatenate(bands, axis=0))


def detect_tissue(slide, max_side: int = MASK_SIDE) -> TissueMap:
    """The tissue map of a core.imageio.Slide from an overview about ``max_side`` pixels a side."""
    pixels = overview(slide, max_side)
    return TissueMap(tissue_mask(pixels), slide.width / pixels.shape[1], overview=pixels)
