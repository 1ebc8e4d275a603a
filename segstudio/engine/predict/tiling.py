"""Where the tiles go and how their outputs add up.

Tiles overlap and are blended with a smooth Gaussian window (high in the middle, small but never zero at the
edges, where a convolution sees padding instead of image): each tile's probabilities are scaled on the
device by its share of the total window weight at each pixel, so blending is a plain sum. Only a band of
rows about one tile-row high is kept as float32 sums; rows leave the band as soon as no later tile can
touch them.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

# Finished rows are handed out in slabs this high, which bounds the scratch memory for summarising them.
RELEASE_ROWS = 64
# Floor of the blending window along each axis (1e-6 in a corner), so pixels seen only near a tile's
# edge still get a usable weight.
_MIN_AXIS_WEIGHT = 1e-3


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


class BlendFactors:
    """Each tile's window divided by the total window weight its pixels receive from all tiles.

    The window is separable and the tiles form a grid, so the total weight at (y, x) is rows(y) * cols(x):
    the division can happen per tile on the device, and blending on the host is a plain sum.
    """

    def __init__(self, plan: TilePlan, sigma_scale: float, device: torch.device):
        self.rows, self._row_kind = self._axis(plan.rows, plan.tile_h, plan.padded_h, sigma_scale, device)
        self.cols, self._col_kind = self._axis(plan.cols, plan.tile_w, plan.padded_w, sigma_scale, device)
        # Tiles away from the edges all have the same factors: each distinct product is made once.
        self._products: dict[tuple[int, int], torch.Tensor] = {}

    @staticmethod
    def _axis(starts, size, padded, sigma_scale, device) -> tuple[dict[int, torch.Tensor], dict[int, int]]:
        """Each start's factors along one axis, and which distinct factor vector it has (interior starts
        share one)."""
        window = _axis_window(size, sigma_scale)
        total = np.zeros(padded, np.float64)
        for start in starts:
            total[start : start + size] += window
        factors, kinds, distinct = {}, {}, {}
        for start in starts:
            vector = (window / total[start : start + size]).astype(np.float32)
            kind = distinct.setdefault(vector.tobytes(), len(distinct))
            factors[start], kinds[start] = torch.from_numpy(vector).to(device), kind
        return factors, kinds

    def _product(self, y: int, x: int) -> torch.Tensor:
        key = (self._row_kind[y], self._col_kind[x])
        product = self._products.get(key)
        if product is None:
            if len(self._products) >= _PRODUCTS_KEPT:
                self._products.pop(next(iter(self._products)))
            product = self._products[key] = torch.outer(self.rows[y], self.cols[x])
        return product

    def for_batch(self, origins: list[tuple[int, int]]) -> torch.Tensor:
        """(N, 1, tile_h, tile_w) factors for the tiles at `origins` (read only: shared between batches)."""
        if len(origins) == 1:
            return self._product(*origins[0])[None, None]
        return torch.stack([self._product(y, x) for y, x in origins])[:, None]


# Distinct tile factors kept (a tile's worth each): the interior one and those of the edges met lately.
_PRODUCTS_KEPT = 16


class BandBlender:
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

    def release_until(self, row: int, slab_rows: int = RELEASE_ROWS) -> Iterator[tuple[int, Any]]:
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


def band_height(plan: TilePlan, batches: list[list[tuple[int, int]]]) -> int:
    """Rows a batch can reach beyond the first row still open when it lands."""
    return max(batch[-1][0] + plan.tile_h - batch[0][0] for batch in batches)
