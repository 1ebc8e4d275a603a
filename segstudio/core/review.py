"""The review queue: after a prediction, the regions where the model was least sure, most uncertain first.

A person checks a prediction faster by looking where the model hesitated than by scanning the image in
order. The image (or slide) is cut into square regions on a fixed grid; each region's score is the mean
uncertainty (entropy of the class probabilities, 0-1, from engine.predict.outputs) over the pixels a tile
covered. "Next" moves to the most uncertain region not yet checked and counts the one shown before as
looked at; a region with pixels painted by hand counts as corrected. Marks are kept by the region's place,
so predicting again re-ranks the regions without losing what a person did.

The sums are kept per region, never per pixel: a 100,000 x 100,000 slide in regions of 1024 pixels is a
98 x 98 grid, filled slab by slab as a prediction's rows finish.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from segstudio.core.storage import atomic_write_json

# A region on a slide: about a screen at full resolution (256 µm at 0.25 µm per pixel), two label chunks.
SLIDE_REGION = 1024
# Regions where the model was this sure everywhere are not worth a look and are left out of the queue.
MIN_UNCERTAINTY = 0.01
FORMAT = 1

Box = tuple[int, int, int, int]  # y0, x0, height, width in full-resolution pixels


def image_region_side(height: int, width: int) -> int:
    """Regions of an ordinary image: about an eighth of its longer side, a power of two from 128 to 1024."""
    side = 1 << max(0, round(math.log2(max(1, max(height, width)) / 8)))
    return int(min(1024, max(128, side)))


@dataclass
class Region:
    y0: int
    x0: int
    h: int
    w: int
    uncertainty: float
    checked: bool = False  # a person looked at it (moved on from it with Next)
    corrected: bool = False  # a person painted in it

    @property
    def key(self) -> str:
        return f"{self.y0},{self.x0}"

    @property
    def box(self) -> Box:
        return self.y0, self.x0, self.h, self.w

    @property
    def done(self) -> bool:
        return self.checked or self.corrected

    def overlaps(self, box: Box) -> bool:
        y0, x0, h, w = box
        return y0 < self.y0 + self.h and self.y0 < y0 + h and x0 < self.x0 + self.w and self.x0 < x0 + w


class UncertaintyGrid:
    """Per-region sums of uncertainty on a grid of ``side`` pixels, filled from slabs of rows."""

    def __init__(self, height: int, width: int, side: int) -> None:
        self.height, self.width, self.side = int(height), int(width), int(side)
        self.sums = np.zeros((-(-self.height // side), -(-self.width // side)), np.float64)
        self.counts = np.zeros(self.sums.shape, np.int64)

    def add(self, y0: int, x0: int, values: np.ndarray) -> None:
        """Uncertainty of a slab at (y0, x0); -1 marks pixels no tile covered (glass)."""
        h, w = values.shape
        if not h or not w:
            return
        rows, row_cells = _cuts(y0, h, self.side)
        cols, col_cells = _cuts(x0, w, self.side)
        ends = [*rows[1:], h]
        for cell, top, bottom in zip(row_cells, rows, ends, strict=True):
            part = values[top:bottom]
            # Column sums (fast along rows, unlike reduceat over axis 0); uncovered pixels are -1 each, so
            # adding their count back leaves the covered pixels' sum.
            counts = (part >= 0).sum(axis=0)
            sums = part.sum(axis=0, dtype=np.float64) + (part.shape[0] - counts)
            self.sums[cell, col_cells] += np.add.reduceat(sums, cols)
            self.counts[cell, col_cells] += np.add.reduceat(counts, cols)

    def add_map(self, uncertainty: np.ndarray, slab: int = 1024) -> None:
        """A whole image's uncertainty map, a slab of rows at a time (float16 maps stay float16)."""
        for y in range(0, uncertainty.shape[0], slab):
            self.add(y, 0, uncertainty[y:y + slab].astype(np.float32))

    def regions(self, min_uncertainty: float = MIN_UNCERTAINTY) -> list[Region]:
        """The covered regions at or above ``min_uncertainty``, most uncertain first."""
        found = []
        s = self.side
        for cy, cx in zip(*np.nonzero(self.counts), strict=True):
            mean = float(self.sums[cy, cx] / self.counts[cy, cx])
            if mean >= min_uncertainty:
                y0, x0 = int(cy) * s, int(cx) * s
                found.append(Region(y0, x0, min(s, self.height - y0), min(s, self.width - x0), round(mean, 5)))
        return sorted(found, key=lambda r: (-r.uncertainty, r.y0, r.x0))

    def mean(self) -> float | None:
        total = int(self.counts.sum())
        return float(self.sums.sum() / total) if total else None


def _cuts(start: int, length: int, side: int) -> tuple[np.ndarray, np.ndarray]:
    """Where a span starting at ``start`` crosses region borders (offsets into it) and each piece's cell."""
    first, last = start // side, (start + length - 1) // side
    cells = np.arange(first, last + 1)
    offsets = np.maximum(cells * side - start, 0)
    return offsets, cells


class ReviewQueue:
    """Regions to check, most uncertain first, with what a person did in each; saved as a small JSON file."""

    def __init__(self, regions: list[Region] | None = None, mean_uncertainty: float | None = None) -> None:
        self.regions: list[Region] = []
        self.mean_uncertainty = mean_uncertainty
        self.current: Region | None = None  # the region shown by the last Next
        self.image_checked = False  # the image as a whole was visited from the folder's queue
        self.update(regions or [])

    @classmethod
    def from_uncertainty(cls, uncertainty: np.ndarray, side: int | None = None) -> ReviewQueue:
        """The queue of an ordinary image from its prediction's uncertainty map."""
        height, width = uncertainty.shape
        grid = UncertaintyGrid(height, width, side or image_region_side(height, width))
        grid.add_map(uncertainty)
        return cls(grid.regions(), grid.mean())

    # --- ranking ------------------------------------------------------------------------------------------
    def update(self, regions: list[Region], mean_uncertainty: float | None = None) -> None:
        """New scores for these regions (a new prediction over some or all of them); marks stay by place."""
        known = {r.key: r for r in self.regions}
        for region in regions:
            old = known.get(region.key)
            if old is not None:
                region.checked, region.corrected = old.checked or region.checked, old.corrected or region.corrected
            known[region.key] = region
        self.regions = sorted(known.values(), key=lambda r: (-r.uncertainty, r.y0, r.x0))
        if mean_uncertainty is not None:
            self.mean_uncertainty = mean_uncertainty
        if self.current is not None:
            self.current = known.get(self.current.key)

    def next(self) -> Region | None:
        """Count the region shown now as looked at and return the most uncertain one not yet checked."""
        if self.current is not None:
            self.current.checked = True
        self.current = next((r for r in self.regions if not r.done), None)
        return self.current

    def mark_corrected(self, keys) -> int:
        """Regions a person painted in; returns how many were newly marked."""
        wanted, newly = set(keys), 0
        for region in self.regions:
            if region.key in wanted and not region.corrected:
                region.corrected = True
                newly += 1
        return newly

    def overlapping(self, box: Box) -> list[Region]:
        return [r for r in self.regions if r.overlaps(box)]

    # --- counts -------------------------------------------------------------------------------------------
    @property
    def total(self) -> int:
        return len(self.regions)

    @property
    def checked(self) -> int:
        return sum(r.done for r in self.regions)

    @property
    def corrected(self) -> int:
        return sum(r.corrected for r in self.regions)

    @property
    def finished(self) -> bool:
        return all(r.done for r in self.regions)

    def describe(self) -> str:
        if not self.regions:
            return "No uncertain regions: the model was sure everywhere it predicted"
        text = f"Checked {self.checked} of {self.total} region{'s' if self.total != 1 else ''}"
        return text + (f" ({self.corrected} corrected)" if self.corrected else "")

    # --- saving -------------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"format": FORMAT, "mean_uncertainty": self.mean_uncertainty, "image_checked": self.image_checked,
                "current": self.current.key if self.current is not None else None,
                "regions": [[r.y0, r.x0, r.h, r.w, r.uncertainty, int(r.checked), int(r.corrected)]
                            for r in self.regions]}

    @classmethod
    def from_dict(cls, data: dict) -> ReviewQueue:
        regions = [Region(int(y0), int(x0), int(h), int(w), float(u), bool(c), bool(k))
                   for y0, x0, h, w, u, c, k in data.get("regions", [])]
        mean = data.get("mean_uncertainty")
        queue = cls(regions, float(mean) if mean is not None else None)
        queue.image_checked = bool(data.get("image_checked"))
        current = data.get("current")
        queue.current = next((r for r in queue.regions if r.key == current), None)
        return queue

    def save(self, path: os.PathLike | str) -> None:
        atomic_write_json(Path(path), self.to_dict())

    @classmethod
    def load(cls, path: os.PathLike | str) -> ReviewQueue | None:
        """The queue saved at ``path``; None when there is none or it cannot be read (a fresh start)."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            if not isinstance(data, dict) or data.get("format") != FORMAT:
                return None
            return cls.from_dict(data)
        except (OSError, ValueError, TypeError, KeyError):
            return None


def rank_images(queues: dict) -> list:
    """Keys of ``queues`` (image -> ReviewQueue or None) not yet visited, most uncertain first; images
    without a prediction are left out."""
    ranked = [(q.mean_uncertainty, key) for key, q in queues.items()
              if q is not None and q.mean_uncertainty is not None and not q.image_checked]
    return [key for _mean, key in sorted(ranked, key=lambda item: -item[0])]
