"""Brush, eraser, fill, polygon and delete as pure pixel operations on a label mask.

Every operation modifies ``mask`` (an (H, W) uint8 or uint16 array of class ids) in place and returns
a :class:`Diff` holding the old and new pixels of the smallest rectangle that contains every pixel it
changed, or ``None`` when nothing changed. Fill and delete return a :class:`FillDiff` instead, with the
same interface: every pixel of a filled region had one class before and has one class after, so it keeps
only the region's map (and which hand flags it set), not two image-sized copies. The work and the
memory of the brush and polygon tools are proportional to that rectangle, never to the image, so
painting on a whole-slide mask costs the same as painting on a thumbnail. Fill and delete follow a
connected region that may be large, and grow their search window only as far as the region reaches.

Coordinates: ``y``/``x`` (and the ``(y, x)`` points of :func:`paint_segment`) are pixel row/column
indices; non-integer values are rounded to the nearest pixel. :func:`fill_polygon` takes ``(x, y)``
vertices, as OpenCV and Qt do.

``hand`` is the optional bool map of pixels painted by hand: an operation sets it True wherever it
wrote, and the Diff then also records its old/new values. ``protect`` is an optional bool map of pixels
an operation must leave alone (for instance pixels locked by the user).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

__all__ = [
    "Diff",
    "FillDiff",
    "FillRegion",
    "paint_disk",
    "paint_segment",
    "flood_fill",
    "find_region",
    "fill_region",
    "fill_polygon",
    "delete_object",
    "pick_class",
]

# Flood fill starts by looking at a window this many pixels either side of the click and widens it only
# while the region touches the window's edge, so filling a small cell on a huge slide stays cheap.
_FILL_START_HALF = 64


@dataclass
class Diff:
    """The change one operation (or one merged stroke) made to a rectangle of the mask.

    ``old``/``new`` are the rectangle's pixels before/after, ``hand_old``/``hand_new`` the same for the
    hand-painted map when the edit tracked it. :meth:`apply` and :meth:`revert` write only the pixels
    where old and new differ: a merged stroke does not know the pixels of its rectangle that none of its
    segments reached, and stores them as equal placeholders that must never be written back.
    """

    y0: int
    x0: int
    old: np.ndarray
    new: np.ndarray
    hand_old: np.ndarray | None = None
    hand_new: np.ndarray | None = None

    def __post_init__(self):
        if self.old.shape != self.new.shape or self.old.ndim != 2:
            raise ValueError(f"old {self.old.shape} and new {self.new.shape} must be the same 2-D shape")
        if (self.hand_old is None) != (self.hand_new is None):
            raise ValueError("hand_old and hand_new must be given together")
        if self.hand_old is not None and not (self.hand_old.shape == self.hand_new.shape == self.old.shape):
            raise ValueError("hand_old/hand_new must have the shape of old/new")

    @property
    def y1(self) -> int:
        return self.y0 + self.old.shape[0]

    @property
    def x1(self) -> int:
        return self.x0 + self.old.shape[1]

    @property
    def shape(self) -> tuple[int, int]:
        return self.old.shape

    @property
    def bbox(self) -> tuple[int, int, int, int]:
        """(y0, x0, y1, x1), end-exclusive: the rectangle a view has to refresh."""
        return self.y0, self.x0, self.y1, self.x1

    @property
    def region(self) -> tuple[slice, slice]:
        return slice(self.y0, self.y1), slice(self.x0, self.x1)

    @property
    def nbytes(self) -> int:
        total = self.old.nbytes + self.new.nbytes
        if self.hand_old is not None:
            total += self.hand_old.nbytes + self.hand_new.nbytes
        return total

    def apply(self, mask: np.ndarray, hand: np.ndarray | None = None) -> None:
        """Redo the change on ``mask`` (and ``hand`` when both it and this diff carry a hand map)."""
        self._write(mask, self.old, self.new, hand, self.hand_old, self.hand_new)

    def revert(self, mask: np.ndarray, hand: np.ndarray | None = None) -> None:
        """Undo the change on ``mask`` (and ``hand`` when both it and this diff carry a hand map)."""
        self._write(mask, self.new, self.old, hand, self.hand_new, self.hand_old)

    def _write(self, mask, before, after, hand, hand_before, hand_after) -> None:
        region = self.region
        np.copyto(mask[region], after, where=before != after)
        if hand is not None and hand_after is not None:
            np.copyto(hand[region], hand_after, where=hand_before != hand_after)


def _check_mask(mask: np.ndarray) -> None:
    if not isinstance(mask, np.ndarray) or mask.ndim != 2 or mask.dtype not in (np.uint8, np.uint16):
        desc = f"{mask.dtype} array of shape {mask.shape}" if isinstance(mask, np.ndarray) else type(mask).__name__
        raise ValueError(f"label mask must be a 2-D uint8 or uint16 array, got {desc}")


def _check_value(mask: np.ndarray, value) -> int:
    v = int(value)
    top = np.iinfo(mask.dtype).max
    if not 0 <= v <= top:
        raise ValueError(f"class id {v} does not fit a {mask.dtype} mask (0..{top})")
    return v


def _check_map(name: str, arr: np.ndarray | None, mask: np.ndarray) -> None:
    if arr is None:
        return
    if not isinstance(arr, np.ndarray) or arr.dtype != np.bool_ or arr.shape != mask.shape:
        desc = f"{arr.dtype} {arr.shape}" if isinstance(arr, np.ndarray) else type(arr).__name__
        raise ValueError(f"{name} must be a bool array of the mask's shape {mask.shape}, got {desc}")


def _pixel(v) -> int:
    return int(round(float(v)))


def _commit(mask, y0, x0, footprint, value, hand, protect) -> Diff | None:
    """Write ``value`` where ``footprint`` (anchored at y0, x0) allows and return the tight Diff."""
    h, w = footprint.shape
    region = (slice(y0, y0 + h), slice(x0, x0 + w))
    roi = mask[region]
    write = footprint if protect is None else footprint & ~protect[region]
    changed = write & (roi != value)
    if hand is not None:
        changed |= write & ~hand[region]
    rows = np.flatnonzero(changed.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(changed.any(axis=0))
    tight = (slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1))
    sub_changed = changed[tight]
    sub = roi[tight]
    old = sub.copy()
    np.copyto(sub, value, where=sub_changed)
    diff = Diff(y0 + tight[0].start, x0 + tight[1].start, old, sub.copy())
    if hand is not None:
        hsub = hand[region][tight]
        diff.hand_old = hsub.copy()
        hsub |= sub_changed
        diff.hand_new = hsub.copy()
    return diff


def _root(arr: np.ndarray) -> np.ndarray:
    while isinstance(arr.base, np.ndarray):
        arr = arr.base
    return arr


def _capsule(shape_hw, y0, x0, y1, x1, radius):
    """Pixels whose centre lies within ``radius`` of the segment (y0,x0)-(y1,x1), clipped to the image.

    Returns (top, left, footprint) or None when the capsule misses the image. Integer arithmetic keeps
    the shape exact (and symmetric) for integer radii; a radius below one pixel also includes the
    8-connected line between the points, otherwise a thin fast stroke would break into dots.
    """
    H, W = shape_hw
    reach = int(np.floor(radius))
    top, bottom = max(min(y0, y1) - reach, 0), min(max(y0, y1) + reach + 1, H)
    left, right = max(min(x0, x1) - reach, 0), min(max(x0, x1) + reach + 1, W)
    if top >= bottom or left >= right:
        return None
    r2 = int(radius) ** 2 if float(radius).is_integer() else float(radius) ** 2
    ys = np.arange(top - y0, bottom - y0, dtype=np.int64)[:, None]
    xs = np.arange(left - x0, right - x0, dtype=np.int64)[None, :]
    dy, dx = y1 - y0, x1 - x0
    inside = ys * ys + xs * xs <= r2
    if dy or dx:
        ey, ex = ys - dy, xs - dx
        inside |= ey * ey + ex * ex <= r2
        length2 = dy * dy + dx * dx
        along = ys * dy + xs * dx
        across = ys * dx - xs * dy
        inside |= (along >= 0) & (along <= length2) & (across * across <= r2 * length2)
    if radius < 1:
        line = np.zeros(inside.shape, np.uint8)
        cv2.line(line, (x0 - left, y0 - top), (x1 - left, y1 - top), 1, 1, cv2.LINE_8)
        inside |= line.view(np.bool_)
    return top, left, inside


def paint_segment(mask, p0, p1, radius, value, *, hand=None, protect=None) -> Diff | None:
    """Paint ``value`` over every pixel within ``radius`` of the segment p0-p1 (points are (y, x)).

    This is one brush or eraser (value 0) step between two mouse events: the whole capsule is filled,
    so a stroke has no gaps however fast the cursor moves.
    """
    _check_mask(mask)
    value = _check_value(mask, value)
    _check_map("hand", hand, mask)
    _check_map("protect", protect, mask)
    if radius < 0:
        raise ValueError(f"brush radius must be >= 0, got {radius}")
    y0, x0 = _pixel(p0[0]), _pixel(p0[1])
    y1, x1 = _pixel(p1[0]), _pixel(p1[1])
    found = _capsule(mask.shape, y0, x0, y1, x1, radius)
    if found is None:
        return None
    top, left, footprint = found
    return _commit(mask, top, left, footprint, value, hand, protect)


def paint_disk(mask, cy, cx, radius, value, *, hand=None, protect=None) -> Diff | None:
    """Paint ``value`` over the round brush footprint centred on (cy, cx): a click without drag."""
    return paint_segment(mask, (cy, cx), (cy, cx), radius, value, hand=hand, protect=protect)


def _connected_region(mask, y, x, connectivity):
    """The connected region of mask[y, x]'s class through (y, x): (top, left, bool map of its bbox).

    cv2.floodFill marks the region in a mask of its own (the label mask is only read) inside a window
    around the seed; while the region reaches a window edge that is not the image edge, the window grows
    on the touched sides by four times its size (few passes: the last one, over the region's whole box,
    is most of the cost). Cost follows the region's bounding box, not the image.
    """
    H, W = mask.shape
    wy0, wy1 = max(y - _FILL_START_HALF, 0), min(y + _FILL_START_HALF + 1, H)
    wx0, wx1 = max(x - _FILL_START_HALF, 0), min(x + _FILL_START_HALF + 1, W)
    flags = connectivity | (1 << 8) | cv2.FLOODFILL_MASK_ONLY  # marks are 1, so the map reads as bool
    while True:
        window = mask[wy0:wy1, wx0:wx1]
        if mask.dtype != np.uint8:  # floodFill reads 8-bit images: compare a 16-bit window first
            window = (window == mask[y, x]).view(np.uint8)
        wh, ww = wy1 - wy0, wx1 - wx0
        marks = np.zeros((wh + 2, ww + 2), np.uint8)
        _, _, _, (rx, ry, rw, rh) = cv2.floodFill(window, marks, (x - wx0, y - wy0), 0, 0, 0, flags)
        grow_up = ry == 0 and wy0 > 0
        grow_down = ry + rh == wh and wy1 < H
        grow_left = rx == 0 and wx0 > 0
        grow_right = rx + rw == ww and wx1 < W
        if not (grow_up or grow_down or grow_left or grow_right):
            return wy0 + ry, wx0 + rx, marks[1 + ry:1 + ry + rh, 1 + rx:1 + rx + rw].view(np.bool_)
        if grow_up:
            wy0 = max(wy0 - 4 * wh, 0)
        if grow_down:
            wy1 = min(wy1 + 4 * wh, H)
        if grow_left:
            wx0 = max(wx0 - 4 * ww, 0)
        if grow_right:
            wx1 = min(wx1 + 4 * ww, W)
        if (wy1 - wy0) * (wx1 - wx0) * 8 > H * W:
            # A pass over much of the image costs nearly what the whole does, and one that turns out
            # too small is paid twice: go straight to the whole image (one pass for a background fill).
            wy0, wy1, wx0, wx1 = 0, H, 0, W


def _check_connectivity(connectivity) -> int:
    if connectivity not in (4, 8):
        raise ValueError(f"connectivity must be 4 or 8, got {connectivity}")
    return connectivity


def _inside(mask, y, x) -> bool:
    return 0 <= y < mask.shape[0] and 0 <= x < mask.shape[1]


@dataclass
class FillRegion:
    """A connected region of one class, found by :func:`find_region` and not changed yet.

    ``footprint`` is the region's map over its bounding box, anchored at (``top``, ``left``). The tools
    look at its size and whether it reaches the image border before they change anything.
    """

    top: int
    left: int
    footprint: np.ndarray
    label: int
    image_shape: tuple[int, int]

    @property
    def bottom(self) -> int:
        return self.top + self.footprint.shape[0]

    @property
    def right(self) -> int:
        return self.left + self.footprint.shape[1]

    @property
    def touches_border(self) -> bool:
        """True when the region reaches the edge of the image (its bounding box is tight)."""
        H, W = self.image_shape
        return self.top == 0 or self.left == 0 or self.bottom == H or self.right == W

    @property
    def area(self) -> int:
        return int(np.count_nonzero(self.footprint))

    @property
    def share(self) -> float:
        """The region's pixels as a fraction of the image's."""
        H, W = self.image_shape
        return self.area / float(H * W)


class FillDiff:
    """What a fill changed: every pixel of ``footprint`` went from class ``old_value`` to ``new_value``.

    The same interface as :class:`Diff` (rectangle, apply, revert, nbytes, and ``old``/``new`` built on
    request, with equal placeholders outside the region). Storing the region once instead of the
    rectangle's old and new pixels halves an image-wide fill's undo memory and makes undo one masked
    write. ``hand_set`` marks the pixels whose hand flag the fill turned on (None when the fill did not
    track the hand map): the fill sets the flag on its whole region, and undo clears exactly these.
    """

    def __init__(self, y0: int, x0: int, footprint: np.ndarray, old_value: int, new_value: int,
                 dtype, hand_set: np.ndarray | None = None) -> None:
        if footprint.ndim != 2 or footprint.dtype != np.bool_:
            raise ValueError(f"footprint must be a 2-D bool map, got {footprint.dtype} {footprint.shape}")
        if hand_set is not None and hand_set.shape != footprint.shape:
            raise ValueError("hand_set must have the footprint's shape")
        self.y0, self.x0 = int(y0), int(x0)
        self.footprint = footprint
        self.old_value, self.new_value = int(old_value), int(new_value)
        self.dtype = np.dtype(dtype)
        self.hand_set = hand_set

    @property
    def shape(self) -> tuple[int, int]:
        return self.footprint.shape

    @property
    def y1(self) -> int:
        return self.y0 + self.footprint.shape[0]

    @property
    def x1(self) -> int:
        return self.x0 + self.footprint.shape[1]

    bbox = Diff.bbox  # both read only y0, x0, y1 and x1
    region = Diff.region

    @property
    def nbytes(self) -> int:
        return self.footprint.nbytes + (0 if self.hand_set is None else self.hand_set.nbytes)

    @property
    def old(self) -> np.ndarray:
        return np.where(self.footprint, self.old_value, 0).astype(self.dtype)

    @property
    def new(self) -> np.ndarray:
        return np.where(self.footprint, self.new_value, 0).astype(self.dtype)

    @property
    def hand_old(self) -> np.ndarray | None:
        return None if self.hand_set is None else self.footprint & ~self.hand_set

    @property
    def hand_new(self) -> np.ndarray | None:
        return None if self.hand_set is None else self.footprint.copy()

    def apply(self, mask: np.ndarray, hand: np.ndarray | None = None) -> None:
        """Redo: the region holds ``old_value`` and becomes ``new_value``."""
        region = self.region
        _shift(mask[region], self.footprint, self.new_value - self.old_value)
        if hand is not None and self.hand_set is not None:
            np.logical_or(hand[region], self.footprint, out=hand[region])

    def revert(self, mask: np.ndarray, hand: np.ndarray | None = None) -> None:
        """Undo: the region holds ``new_value`` and goes back to ``old_value``."""
        region = self.region
        _shift(mask[region], self.footprint, self.old_value - self.new_value)
        if hand is not None and self.hand_set is not None:
            np.greater(hand[region], self.hand_set, out=hand[region])  # hand and not hand_set


def _shift(roi: np.ndarray, footprint: np.ndarray, delta: int) -> None:
    """Add ``delta`` (wrapping in the mask's dtype) to the footprint's pixels of ``roi``.

    Every footprint pixel holds the same class, so adding the difference of two classes moves all of
    them exactly from one to the other. Unlike ``np.copyto(..., where=)``, whose per-pixel branch
    mispredicts along every ragged region edge, a multiply and an add run at memory speed: on an
    image-wide fill this is several times faster.
    """
    if delta == 0:
        return
    step = roi.dtype.type(delta % (int(np.iinfo(roi.dtype).max) + 1))
    np.add(roi, np.multiply(footprint.view(np.uint8), step, dtype=roi.dtype), out=roi)


def find_region(mask, y, x, *, connectivity=4) -> FillRegion | None:
    """The connected region (4-connected by default) of the clicked pixel's class; None outside the mask."""
    _check_mask(mask)
    connectivity = _check_connectivity(connectivity)
    y, x = _pixel(y), _pixel(x)
    if not _inside(mask, y, x):
        return None
    top, left, footprint = _connected_region(mask, y, x, connectivity)
    return FillRegion(top, left, footprint, int(mask[y, x]), mask.shape)


def fill_region(mask, region: FillRegion, value, *, hand=None, protect=None) -> FillDiff | None:
    """Set a region found by :func:`find_region` on this mask (unchanged since) to ``value``."""
    _check_mask(mask)
    value = _check_value(mask, value)
    _check_map("hand", hand, mask)
    _check_map("protect", protect, mask)
    top, left, write = region.top, region.left, region.footprint
    if 2 * write.size < _root(write).size:
        write = write.copy()  # found in a much larger search window: keep only the region's box
    box = (slice(top, region.bottom), slice(left, region.right))
    if protect is not None:
        write = write & ~protect[box]
    same = region.label == value
    hand_set = None if hand is None else np.greater(write, hand[box])  # written, not yet hand-painted
    if same and hand_set is None:
        return None
    if same or protect is not None:
        # Only some of the box changes (hand flags only, or protected pixels left out): trim to them.
        changed = hand_set if same else write
        rows = np.flatnonzero(changed.any(axis=1))
        if rows.size == 0:
            return None
        cols = np.flatnonzero(changed.any(axis=0))
        tight = slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1)
        write = write[tight] if not same else hand_set[tight]
        hand_set = None if hand_set is None else hand_set[tight]
        top, left = top + tight[0].start, left + tight[1].start
    diff = FillDiff(top, left, write, region.label, value, mask.dtype, hand_set)
    diff.apply(mask, hand)
    return diff


def flood_fill(mask, y, x, value, *, hand=None, protect=None, connectivity=4) -> FillDiff | None:
    """Set the contiguous region of the clicked pixel's class (4-connected by default) to ``value``."""
    _check_mask(mask)
    value = _check_value(mask, value)
    _check_map("hand", hand, mask)
    _check_map("protect", protect, mask)
    connectivity = _check_connectivity(connectivity)
    y, x = _pixel(y), _pixel(x)
    if not _inside(mask, y, x) or (mask[y, x] == value and hand is None):
        return None
    region = find_region(mask, y, x, connectivity=connectivity)
    return fill_region(mask, region, value, hand=hand, protect=protect)


def delete_object(mask, y, x, *, hand=None, protect=None, connectivity=4) -> FillDiff | None:
    """Set the connected object under (y, x) to background 0; clicking background changes nothing."""
    _check_mask(mask)
    y, x = _pixel(y), _pixel(x)
    if not _inside(mask, y, x) or mask[y, x] == 0:
        return None
    return flood_fill(mask, y, x, 0, hand=hand, protect=protect, connectivity=connectivity)


def fill_polygon(mask, points_xy, value, *, hand=None, protect=None) -> Diff | None:
    """Fill the polygon (or lasso) with vertices ``points_xy`` ((x, y) pairs, closed implicitly)."""
    _check_mask(mask)
    value = _check_value(mask, value)
    _check_map("hand", hand, mask)
    _check_map("protect", protect, mask)
    pts = np.asarray(points_xy, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"polygon points must be a sequence of (x, y) pairs, got shape {pts.shape}")
    if len(pts) < 3 or not np.isfinite(pts).all():
        return None
    pts = np.round(pts).astype(np.int64)
    H, W = mask.shape
    left, right = max(int(pts[:, 0].min()), 0), min(int(pts[:, 0].max()) + 1, W)
    top, bottom = max(int(pts[:, 1].min()), 0), min(int(pts[:, 1].max()) + 1, H)
    if top >= bottom or left >= right:
        return None
    inside = np.zeros((bottom - top, right - left), np.uint8)
    shifted = (pts - (left, top)).astype(np.int32)
    cv2.fillPoly(inside, [shifted], 1, cv2.LINE_8)
    return _commit(mask, top, left, inside.view(np.bool_), value, hand, protect)


def pick_class(mask, y, x) -> int:
    """The class id under (y, x): the eyedropper."""
    _check_mask(mask)
    y, x = _pixel(y), _pixel(x)
    if not _inside(mask, y, x):
        raise IndexError(f"pixel ({y}, {x}) is outside the {mask.shape[0]}x{mask.shape[1]} mask")
    return int(mask[y, x])
