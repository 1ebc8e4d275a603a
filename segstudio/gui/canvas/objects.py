"""The object view: every object in its own colour, or only its outline, over the image.

Object ids are folded onto 255 colours (id 1 -> entry 1, id 256 -> entry 1 again ...) and drawn as an
indexed image over a one-byte-per-pixel buffer, refreshed per rectangle after an edit. Neighbours share a
colour only when their ids differ by a multiple of 255; the colours follow the golden angle round the
hue circle so consecutive ids (which watershed gives to neighbours) differ most.
"""
from __future__ import annotations

import colorsys

import numpy as np
from PySide6.QtCore import QRectF
from PySide6.QtGui import QImage

from segstudio.gui.canvas.tiles import MemoryItem

PALETTE_SIZE = 255


def object_palette(alpha: int = 170) -> list[int]:
    """256 ARGB entries: 0 transparent, 1..255 distinct hues."""
    table = [0]
    for i in range(PALETTE_SIZE):
        hue = (i * 0.618033988749895) % 1.0
        r, g, b = (int(255 * v) for v in colorsys.hsv_to_rgb(hue, 0.75, 1.0))
        table.append((alpha << 24) | (r << 16) | (g << 8) | b)
    return table


def colour_index(ids: np.ndarray) -> np.ndarray:
    """uint8 palette entries of an instance map: 0 for background, 1..255 for objects."""
    index = (ids.astype(np.int64, copy=False) - 1) % PALETTE_SIZE + 1
    return np.where(ids > 0, index, 0).astype(np.uint8)


def object_edges(ids: np.ndarray) -> np.ndarray:
    """Pixels of an object whose 4-neighbourhood holds another id (background included)."""
    edge = np.zeros(ids.shape, bool)
    edge[1:, :] |= ids[1:, :] != ids[:-1, :]
    edge[:-1, :] |= ids[:-1, :] != ids[1:, :]
    edge[:, 1:] |= ids[:, 1:] != ids[:, :-1]
    edge[:, :-1] |= ids[:, :-1] != ids[:, 1:]
    return edge & (ids > 0)


class ObjectOverlayItem(MemoryItem):
    """Draws an instance map in per-object colours (filled or outlines); updates are per rectangle."""

    def __init__(self) -> None:
        super().__init__()
        self._ids: np.ndarray | None = None
        self._shown: np.ndarray | None = None
        self._image: QImage | None = None
        self._outline_only = False
        self.setZValue(1.5)

    @property
    def ids(self) -> np.ndarray | None:
        return self._ids

    def set_ids(self, ids: np.ndarray | None) -> None:
        self._ids = ids
        self._shown = image = None
        if ids is not None:
            h, w = ids.shape
            self._shown = np.zeros((h, w), np.uint8)
            image = QImage(self._shown.data, w, h, w, QImage.Format.Format_Indexed8)
            image.setColorTable(object_palette())
        self.show_image(image)
        if ids is not None:
            self.refresh()

    def set_outline_only(self, outline: bool) -> None:
        if bool(outline) != self._outline_only:
            self._outline_only = bool(outline)
            self.refresh()

    def refresh(self, y0: int = 0, x0: int = 0, h: int | None = None, w: int | None = None) -> None:
        """The objects changed in the rectangle (y0, x0, h, w) (everything by default): draw it again."""
        if self._ids is None:
            return
        H, W = self._ids.shape
        h = H - y0 if h is None else h
        w = W - x0 if w is None else w
        ya, xa, yb, xb = max(0, y0 - 1), max(0, x0 - 1), min(H, y0 + h + 1), min(W, x0 + w + 1)
        if ya >= yb or xa >= xb:
            return
        if self._outline_only:
            ca, cx = max(0, ya - 1), max(0, xa - 1)
            around = self._ids[ca:min(H, yb + 1), cx:min(W, xb + 1)]
            inner = (slice(ya - ca, yb - ca), slice(xa - cx, xb - cx))
            region = around[inner]
            self._shown[ya:yb, xa:xb] = np.where(object_edges(around)[inner], colour_index(region), 0)
        else:
            self._shown[ya:yb, xa:xb] = colour_index(self._ids[ya:yb, xa:xb])
        self.update(QRectF(xa, ya, xb - xa, yb - ya))

    def shown_indices(self) -> np.ndarray | None:
        """The palette entries drawn (a view), for checks."""
        return self._shown
