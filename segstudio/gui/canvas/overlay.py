"""The mask overlay: label indices turned into a translucent colour layer over the image.

The RGBA buffer is kept alongside the mask and refreshed only inside the rectangle an edit touched, so
painting on an 8192 x 8192 mask costs what the brush covers, not what the image covers.
"""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRect, QRectF
from PySide6.QtGui import QImage, QPainter, QPixmap
from PySide6.QtWidgets import QGraphicsItem, QStyleOptionGraphicsItem, QWidget


class MaskOverlayItem(QGraphicsItem):
    """Draws the label mask through a colour lookup table; updates are per rectangle."""

    def __init__(self, parent: QGraphicsItem | None = None) -> None:
        super().__init__(parent)
        self._mask: np.ndarray | None = None
        self._lut = np.zeros((2, 4), np.uint8)
        self._rgba: np.ndarray | None = None
        self._image: QImage | None = None
        self._outline_only = False
        self.setZValue(1)

    # --- state ---------------------------------------------------------------------------------
    @property
    def mask(self) -> np.ndarray | None:
        return self._mask

    def set_mask(self, mask: np.ndarray | None, lut_rgba: np.ndarray | None = None) -> None:
        self.prepareGeometryChange()
        self._mask = mask
        if lut_rgba is not None:
            self._lut = np.ascontiguousarray(lut_rgba, dtype=np.uint8)
        if mask is None:
            self._rgba = None
            self._image = None
        else:
            self._rgba = np.zeros((*mask.shape, 4), np.uint8)
            # QImage shares the numpy buffer: keep both alive together and never reallocate in place.
            h, w = mask.shape
            self._image = QImage(self._rgba.data, w, h, 4 * w, QImage.Format.Format_RGBA8888)
            self.refresh()
        self.update()

    def set_lut(self, lut_rgba: np.ndarray) -> None:
        self._lut = np.ascontiguousarray(lut_rgba, dtype=np.uint8)
        self.refresh()

    def set_outline_only(self, outline: bool) -> None:
        self._outline_only = bool(outline)
        self.refresh()

    def outline_only(self) -> bool:
        return self._outline_only

    def refresh(self, y0: int = 0, x0: int = 0, h: int | None = None, w: int | None = None) -> None:
        """Recolour the rectangle (y0, x0, h, w) of the overlay from the mask (the whole mask by default)."""
        if self._mask is None or self._rgba is None:
            return
        H, W = self._mask.shape
        h = H - y0 if h is None else h
        w = W - x0 if w is None else w
        # Outlines need one pixel of context on each side to decide where a boundary is.
        pad = 1 if self._outline_only else 0
        ya, xa = max(0, y0 - pad), max(0, x0 - pad)
        yb, xb = min(H, y0 + h + pad), min(W, x0 + w + pad)
        if ya >= yb or xa >= xb:
            return
        labels = self._mask[ya:yb, xa:xb]
        if self._outline_only:
            colours = self._lut_for(labels)[labels]
            colours[~_boundary(labels), 3] = 0
            self._rgba[ya:yb, xa:xb] = colours
        else:
            _recolour(self._rgba[ya:yb, xa:xb], labels, self._lut_for(labels))
        self.update(QRectF(xa, ya, xb - xa, yb - ya))

    def _lut_for(self, labels: np.ndarray) -> np.ndarray:
        """The lookup table, widened with transparent entries if the mask holds ids beyond it."""
        lut = self._lut
        top = int(labels.max()) if labels.size else 0
        if top >= len(lut):
            lut = np.concatenate([lut, np.zeros((top + 1 - len(lut), 4), np.uint8)])
        return lut

    # --- QGraphicsItem -----------------------------------------------------------------------
    def boundingRect(self) -> QRectF:
        if self._mask is None:
            return QRectF()
        h, w = self._mask.shape
        return QRectF(0, 0, w, h)

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        if self._image is None:
            return
        exposed = option.exposedRect.toAlignedRect().intersected(QRect(0, 0, self._image.width(), self._image.height()))
        if exposed.isEmpty():
            return
        painter.drawImage(exposed.topLeft(), self._image, exposed)


# Rows recoloured per step: a band's labels and colours stay in the CPU cache, which makes recolouring a
# whole 8192 x 8192 overlay (an image-wide fill and its undo) about twice as fast as one big lookup.
_BAND_ROWS = 64


def _recolour(rgba: np.ndarray, labels: np.ndarray, lut: np.ndarray) -> None:
    """rgba[...] = lut[labels], one 4-byte colour per pixel, band by band."""
    lut32 = np.ascontiguousarray(lut, dtype=np.uint8).view(np.uint32).ravel()
    out32 = rgba.view(np.uint32)[..., 0]  # a view: the rectangle of the image-sized buffer
    for y in range(0, labels.shape[0], _BAND_ROWS):
        band = out32[y:y + _BAND_ROWS]
        if band.flags.c_contiguous:
            np.take(lut32, labels[y:y + _BAND_ROWS], out=band, mode="clip")
        else:
            band[...] = np.take(lut32, labels[y:y + _BAND_ROWS], mode="clip")


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
