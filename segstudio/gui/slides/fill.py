"""Fill, Delete Object and Eyedropper on a slide, bounded to the view.

Fill gives the touching region of the clicked label the selected class; Delete Object gives it the
background (0); both stop at the edge of the view. At full resolution the region is exact in the pixels in
view. Zoomed out, it is found on the label level the screen shows (the view at about screen resolution,
never millions of pixels) and its full-resolution pixels are those under it that hold the clicked label:
they are painted in the background with one undo step, as an overview brush stroke is, while the level on
screen shows the result at once. A region cut by the view's edge says so in the status bar.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import cv2
import numpy as np
from PySide6.QtCore import QPointF, Qt


class _Region:
    """The filled region on one label level: ``mask`` over the level box whose corner is (ly0, lx0)."""

    def __init__(self, mask: np.ndarray, ly0: int, lx0: int, ds: int, old: int) -> None:
        self.mask, self.ly0, self.lx0, self.ds, self.old = mask, ly0, lx0, ds, old

    def level0_box(self) -> tuple[int, int, int, int]:
        h, w = self.mask.shape
        return self.ly0 * self.ds, self.lx0 * self.ds, h * self.ds, w * self.ds

    def sampled(self, y0: int, x0: int, h: int, w: int, ds: int) -> tuple[slice, slice, np.ndarray] | None:
        """The region seen from a level of downsample ``ds`` over its box (y0, x0, h, w): where it falls
        in that box and what it is there (level pixel (Y, X) is level-0 pixel (Y * ds, X * ds))."""
        rows = (np.arange(y0, y0 + h) * ds) // self.ds - self.ly0
        cols = (np.arange(x0, x0 + w) * ds) // self.ds - self.lx0
        r = np.flatnonzero((rows >= 0) & (rows < self.mask.shape[0]))
        c = np.flatnonzero((cols >= 0) & (cols < self.mask.shape[1]))
        if r.size == 0 or c.size == 0:
            return None
        part = self.mask[np.ix_(rows[r], cols[c])]
        return slice(r[0], r[-1] + 1), slice(c[0], c[-1] + 1), part

    def full_resolution(self, store) -> Callable[[np.ndarray, int, int], None]:
        """A core.label_store Shape: the region's full-resolution pixels that hold the clicked label."""

        def draw(buffer: np.ndarray, oy: int, ox: int) -> None:
            h, w = buffer.shape
            found = self.sampled(oy, ox, h, w, 1)
            if found is None:
                return
            rows, cols, part = found
            if not part.any():
                return
            labels = store.read(oy + rows.start, ox + cols.start, part.shape[0], part.shape[1])
            buffer[rows, cols] = part & (labels == self.old)

        return draw

    def on_level(self, ds: int):
        """What LabelStore.preview asks for: the region's box and Shape on the level of downsample ``ds``."""
        y0, x0, h, w = self.level0_box()
        box = (y0 // ds, x0 // ds, math.ceil(h / ds), math.ceil(w / ds))

        def draw(marked: np.ndarray, oy: int, ox: int) -> None:
            found = self.sampled(oy, ox, marked.shape[0], marked.shape[1], ds)
            if found is not None:
                rows, cols, part = found
                marked[rows, cols] = part

        return box, draw

    def chunks(self, chunk: int) -> set[tuple[int, int]]:
        """The full-resolution chunks (of ``chunk`` pixels a side) the region reaches."""
        rows, cols = np.nonzero(self.mask)
        cy = ((rows + self.ly0) * self.ds) // chunk
        cx = ((cols + self.lx0) * self.ds) // chunk
        keys = np.unique(cy.astype(np.int64) * (1 << 32) + cx)
        return {(int(k >> 32), int(k & 0xFFFFFFFF)) for k in keys}


def region_at(store, level: int, view: tuple[int, int, int, int], x: float, y: float
              ) -> tuple[_Region, bool] | None:
    """The touching region of the label under level-0 (x, y), on ``level``, within ``view`` (x, y, w, h in
    level-0 pixels); and whether the view's edge cut it (where the view is not the slide's edge)."""
    ds = store.downsample(level)
    grid = store.levels[level]
    vx, vy, vw, vh = view
    ly0, lx0 = vy // ds, vx // ds
    ly1, lx1 = min(grid.height, math.ceil((vy + vh) / ds)), min(grid.width, math.ceil((vx + vw) / ds))
    py, px = int(y) // ds - ly0, int(x) // ds - lx0
    if not (0 <= py < ly1 - ly0 and 0 <= px < lx1 - lx0):
        return None
    labels = store.read(ly0, lx0, ly1 - ly0, lx1 - lx0, level=level)
    old = int(labels[py, px])
    _count, parts = cv2.connectedComponents((labels == old).astype(np.uint8), connectivity=4)
    mask = parts == parts[py, px]
    cut = ((mask[0].any() and ly0 > 0) or (mask[-1].any() and ly1 < grid.height)
           or (mask[:, 0].any() and lx0 > 0) or (mask[:, -1].any() and lx1 < grid.width))
    # Cropped to the region's own box: the chunks painted are those it reaches, not all those in view.
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    mask = mask[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    return _Region(np.ascontiguousarray(mask), ly0 + int(rows[0]), lx0 + int(cols[0]), ds, old), cut


# A fill writes every full-resolution pixel of its region: at overview the view is the whole slide, and the
# background there is most of it. Beyond this many 512^2 chunks (256 MiB of 8-bit labels, plus as much for
# its undo step) the user is asked to zoom in instead.
FILL_MAX_CHUNKS = 1024


class SlideFillTool:
    """Fill (value = the selected class) or Delete Object (value 0, on a clicked label other than 0)."""

    def __init__(self, doc, value_of, tell: Callable[[str], None], *, delete: bool = False) -> None:
        self.doc, self.value_of, self.tell, self.delete = doc, value_of, tell, delete

    def mouse_press(self, canvas, pos: QPointF, event) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            self.fill(canvas, pos)

    def mouse_move(self, canvas, pos: QPointF, event) -> None:
        pass

    def mouse_release(self, canvas, pos: QPointF, event) -> None:
        pass

    def fill(self, canvas, pos: QPointF) -> None:
        store, doc = self.doc.store, self.doc
        view = canvas.visible_image_rect()
        if view is None:
            return
        level = store.best_level(1.0 / max(canvas.zoom(), 1e-9))
        if level == 0:
            doc.wait_painted()  # strokes queued at overview first: the region is judged on their pixels
        found = region_at(store, level, view, pos.x(), pos.y())
        if found is None:
            return
        region, cut = found
        value = 0 if self.delete else int(self.value_of())
        if self.delete and region.old == 0:
            self.tell("Click a labelled object to delete it; this is background")
            return
        if region.old == value:
            return
        text = "Delete Object" if self.delete else "Fill"
        reached = region.chunks(store.chunk)
        if value == 0:  # erasing writes only where labels are
            reached &= store.chunk_keys()
        if len(reached) > FILL_MAX_CHUNKS:
            size = len(reached) * store.chunk ** 2 * store.dtype.itemsize / 2 ** 20
            self.tell(f"{text} not done: that region reaches {len(reached):,} tiles of labels at full resolution "
                      f"(about {size:,.0f} MB). Zoom in and do it in parts, or use Predict for large areas.")
            return
        box = region.level0_box()
        if level > 0:
            doc.paint_shape_in_background(box, region.full_resolution(store), value, level, region.on_level, text)
        else:
            diff = store.paint(box, region.full_resolution(store), value)
            if diff is None:
                return
            doc.labels_changed.emit(*diff.box(store.chunk))
            doc.push_diff(diff, text)
        if cut:
            self.tell(f"{text}: stopped at the edge of the view; pan or zoom out to reach the rest")


class SlideEyedropperTool:
    """Click a pixel: its class becomes the one the brush, polygon and fill paint."""

    def __init__(self, doc, choose: Callable[[int], None]) -> None:
        self.doc, self.choose = doc, choose

    def mouse_press(self, canvas, pos: QPointF, event) -> None:
        if event.button() == Qt.MouseButton.LeftButton and canvas.image_pixel(pos) is not None:
            self.doc.wait_painted()
            self.choose(int(self.doc.store.read(int(pos.y()), int(pos.x()), 1, 1)[0, 0]))

    def mouse_move(self, canvas, pos: QPointF, event) -> None:
        pass

    def mouse_release(self, canvas, pos: QPointF, event) -> None:
        pass
