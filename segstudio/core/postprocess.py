"""Clean-ups of a predicted label mask that a person labelling would make anyway.

Networks leave pinholes where a nucleus has a dark nucleolus and scatter a few pixels on bright debris.
Both rules work per connected component, take time and memory in proportion to the mask, and only ever
touch components below a size limit, so real structure is left alone.
"""
from __future__ import annotations

import cv2
import numpy as np


def fill_small_holes(labels: np.ndarray, max_area: int) -> int:
    """Fill background components of at most `max_area` pixels that one class surrounds completely.

    A hole touching the image edge is never filled (it may be open beyond the field of view), nor one
    bordered by two classes. Modifies `labels` in place; returns the number of pixels changed.
    """
    if max_area <= 0 or labels.size == 0:
        return 0
    background = (labels == 0).view(np.uint8)  # bool and uint8 share their bytes: no copy
    count, components, stats, _ = cv2.connectedComponentsWithStats(background, connectivity=4)
    h, w = labels.shape
    changed = 0
    for index in range(1, count):
        x, y, bw, bh, area = (int(v) for v in stats[index])
        if area > max_area or x == 0 or y == 0 or x + bw == w or y + bh == h:
            continue
        # The ring of pixels just outside the hole says which class encloses it.
        y0, y1, x0, x1 = y - 1, y + bh + 1, x - 1, x + bw + 1
        hole = components[y0:y1, x0:x1] == index
        ring = cv2.dilate(hole.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool) & ~hole
        around = np.unique(labels[y0:y1, x0:x1][ring])
        if len(around) == 1 and around[0] != 0:
            labels[y0:y1, x0:x1][hole] = around[0]
            changed += area
    return changed


def remove_small_objects(labels: np.ndarray, min_area: int) -> int:
    """Set foreground components (of any class) smaller than `min_area` pixels to background, in place.

    Returns the number of pixels changed.
    """
    if min_area <= 1 or labels.size == 0:
        return 0
    changed = 0
    for value in _classes_present(labels):
        count, components, stats, _ = cv2.connectedComponentsWithStats((labels == value).view(np.uint8),
                                                                       connectivity=8)
        small = np.flatnonzero(stats[1:, cv2.CC_STAT_AREA] < min_area) + 1
        if small.size:
            # A lookup by component id is one pass over the image; np.isin would sort it.
            is_small = np.zeros(count, bool)
            is_small[small] = True
            mask = is_small[components]
            labels[mask] = 0
            changed += int(stats[small, cv2.CC_STAT_AREA].sum())
    return changed


def _classes_present(labels: np.ndarray) -> list[int]:
    """The non-zero values in `labels`, in increasing order (a count per value for 8/16-bit labels, one
    pass, instead of the sort np.unique needs)."""
    if labels.dtype in (np.uint8, np.uint16):
        counts = np.bincount(labels.ravel(), minlength=1)
        return [int(v) for v in np.flatnonzero(counts[1:]) + 1]
    return [int(v) for v in np.unique(labels) if v != 0]


def apply_postprocess(labels: np.ndarray, rules: dict | None) -> int:
    """Apply the rules a model's metadata asks for: {"fill_holes_px": N, "min_object_px": M}."""
    if not rules:
        return 0
    changed = remove_small_objects(labels, int(rules.get("min_object_px", 0)))
    changed += fill_small_holes(labels, int(rules.get("fill_holes_px", 0)))
    return changed
