"""The mask overlay: label indices turned into a translucent colour layer over the image.

An 8-bit mask is drawn as an indexed image over the mask's own buffer, with the class colours as its
colour table: an edit shows as soon as the mask changes, recolouring a class changes 256 table entries,
and the overlay holds no pixels of its own (an RGBA copy would cost 4 bytes per pixel, 256 MiB on an
8192 x 8192 slide, and seconds to rebuild on every image switch). Outlines keep one byte per pixel of
boundary labels while they are shown. Masks wider than 8 bits (more than 255 classes) fall back to an
RGBA copy refreshed per rectangle. A large mask drawn plainly also has coarser levels for zooming out
(every 2nd, 4th... pixel, as a slide's labels have), kept up to date per rectangle as the mask changes.
"""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRectF
from PySide6.QtGui import QImage, QPixmap

from segstudio.gui.canvas.tiles import MemoryItem, TileLevels, colour_table, halving_levels

__all__ = ["MaskOverlayItem", "colour_table", "rgb_to_pixmap"]


class MaskOverlayItem(MemoryItem):
    """Draws the label mask through a colour lookup table; updates are per rectangle."""

    def __init__(self) -> None:
        super().__init__()
        self._mask: np.ndarray | None = None
        self._lut = np.zeros((2, 4), np.uint8)
        self._shown: np.ndarray | None = None  # the buffer the QImage reads: mask, outline labels or RGBA
        self._image: QImage | None = None
        self._outline_only = False
        self._coarse: dict[int, tuple[QImage, np.ndarray]] = {}  # level -> every ds-th mask pixel, as shown
        self.setZValue(1)

    # --- state ---------------------------------------------------------------------------------
    @property
    def mask(self) -> np.ndarray | None:
        return self._mask

    def set_mask(self, mask: np.ndarray | None, lut_rgba: np.ndarray | None = None) -> None:
        self._mask = mask
        if lut_rgba is not None:
            self._lut = np.ascontiguousarray(lut_rgba, dtype=np.uint8)
        self._rebuild()

    def set_lut(self, lut_rgba: np.ndarray) -> None:
        self._lut = np.ascontiguousarray(lut_rgba, dtype=np.uint8)
        if self._indexed():
            table = colour_table(self._lut)
            self._image.setColorTable(table)
            for image, _pixels in self._coarse.values():
                image.setColorTable(table)
            self.update()
        else:
            self.refresh()

    def set_outline_only(self, outline: bool) -> None:
        if bool(outline) != self._outline_only:
            self._outline_only = bool(outline)
            self._rebuild()

    def outline_only(self) -> bool:
        return self._outline_only

    def refresh(self, y0: int = 0, x0: int = 0, h: int | None = None, w: int | None = None) -> None:
        """The mask changed in the rectangle (y0, x0, h, w) (the whole mask by default): draw it again."""
        if self._mask is None or self._image is None:
            return
        H, W = self._mask.shape
        h = H - y0 if h is None else h
        w = W - x0 if w is None else w
        # A boundary pixel next to the rectangle may change too.
        pad = 1 if self._outline_only else 0
        ya, xa = max(0, y0 - pad), max(0, x0 - pad)
        yb, xb = min(H, y0 + h + pad), min(W, x0 + w + pad)
        if ya >= yb or xa >= xb:
            return
        if self._outline_only:
            self._draw_outline(ya, xa, yb, xb)
        elif not self._indexed():
            self._shown[ya:yb, xa:xb] = self._colours(self._mask[ya:yb, xa:xb])
        for level, (_image, pixels) in self._coarse.items():
            ds = int(self.levels.levels[level][2])
            ra, ca, rb, cb = -(-ya // ds), -(-xa // ds), -(-yb // ds), -(-xb // ds)  # level pixel r is row r * ds
            if ra < rb and ca < cb:
                pixels[ra:rb, ca:cb] = self._mask[ra * ds:rb * ds:ds, ca * ds:cb * ds:ds]
        self.update(QRectF(xa, ya, xb - xa, yb - ya))

    def resident(self, level: int) -> QImage | None:
        """Level 0 is the mask itself; a coarser one (a large mask, drawn plainly) holds every ds-th pixel,
        as a slide's label level does, made the first time the zoom asks for it and kept up to date by
        refresh(). Zoomed out, a fraction of the pixels is turned into colours per frame."""
        if level == 0 or self._image is None:
            return self._image
        made = self._coarse.get(level)
        if made is None:
            ds = int(self.levels.levels[level][2])
            pixels = np.ascontiguousarray(self._mask[::ds, ::ds])
            image = QImage(pixels.data, pixels.shape[1], pixels.shape[0], pixels.strides[0],
                           QImage.Format.Format_Indexed8)
            image.setColorTable(colour_table(self._lut))
            made = self._coarse[level] = (image, pixels)
        return made[0]

    def rendered_rgba(self) -> np.ndarray | None:
        """(H, W, 4) RGBA of what the overlay draws: a copy, for checks and small masks."""
        if self._image is None:
            return None
        image = self._image.convertToFormat(QImage.Format.Format_RGBA8888)
        h, w = image.height(), image.width()
        rows = np.frombuffer(image.constBits(), np.uint8, count=image.sizeInBytes()).reshape(h, -1)
        return rows[:, : 4 * w].reshape(h, w, 4).copy()

    # --- buffers -------------------------------------------------------------------------------
    def _indexed(self) -> bool:
        return self._image is not None and self._image.format() == QImage.Format.Format_Indexed8

    def _rebuild(self) -> None:
        """Make the QImage the item draws for the current mask and mode; it reads ``self._shown``."""
        self._shown = image = None
        mask = self._mask
        if mask is not None:
            h, w = mask.shape
            if self._outline_only and mask.dtype == np.uint8:
                self._shown = np.zeros(mask.shape, np.uint8)
            elif mask.dtype == np.uint8 and mask.flags.c_contiguous:
                self._shown = mask
            else:
                self._shown = np.zeros((h, w, 4), np.uint8)
            if self._shown.ndim == 2:
                image = QImage(self._shown.data, w, h, w, QImage.Format.Format_Indexed8)
                image.setColorTable(colour_table(self._lut))
            else:
                image = QImage(self._shown.data, w, h, 4 * w, QImage.Format.Format_RGBA8888)
        self._coarse = {}
        self.show_image(image)
        if self._shown is not None and self._shown is mask:
            self.levels = TileLevels(halving_levels(*mask.shape), max(mask.shape))
        if self._shown is not None and self._shown is not mask:
            self.refresh()

    def _colours(self, labels: np.ndarray) -> np.ndarray:
        lut = self._lut
        if labels.size and int(labels.max()) >= len(lut):
            lut = np.concatenate([lut, np.zeros((int(labels.max()) + 1 - len(lut), 4), np.uint8)])
        return lut[labels]

    def _draw_outline(self, ya: int, xa: int, yb: int, xb: int) -> None:
        """Boundary pixels of rows ya:yb, columns xa:xb, judged with one more pixel of context around."""
        H, W = self._mask.shape
        ca, cx = max(0, ya - 1), max(0, xa - 1)
        labels = self._mask[ca:min(H, yb + 1), cx:min(W, xb + 1)]
        inner = (slice(ya - ca, ya - ca + yb - ya), slice(xa - cx, xa - cx + xb - xa))
        edge = _boundary(labels)[inner]
        region = labels[inner]
        if self._shown.ndim == 2:
            self._shown[ya:yb, xa:xb] = np.where(edge, region, 0)
        else:
            colours = self._colours(region)
            colours[~edge, 3] = 0
            self._shown[ya:yb, xa:xb] = colours


def _boundary(labels: np.ndarray) -> np.ndarray:
    """Pixels whose 4-neighbourhood holds another label."""
    edge = np.zeros(labels.shape, bool)
    edge[1:, :] |= labels[1:, :] != labels[:-1, :]
    edge[:-1, :] |= labels[:-1, :] != labels[1:, :]
    edge[:, 1:] |= labels[:, 1:] != labels[:, :-1]
    edge[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    return edge


def rgb_to_pixmap(rgb: np.ndarray) -> QPixmap:
    """(H, W, 3) uint8 -> QPixmap (copied, so the array may be freed)."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    h, w, _ = rgb.shape
    image = QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888)
    return QPixmap.fromImage(image.copy())
