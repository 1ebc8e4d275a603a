"""The image under the mask: a DisplayPicture drawn straight from its own buffer.

A QPixmap would hold its own 4 bytes per pixel (256 MiB for an 8192 x 8192 slide) and take a second to
convert each time the image is shown. A QImage over the picture's numpy buffer holds nothing extra and
is made instantly, so switching images costs nothing; 8-bit grey is drawn as an indexed image whose
colour table is the display stretch.
"""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRectF
from PySide6.QtGui import QImage, QPainter
from PySide6.QtWidgets import QGraphicsItem, QStyleOptionGraphicsItem, QWidget

from segstudio.core.imageio import DisplayPicture


def picture_image(picture: DisplayPicture) -> QImage:
    """A QImage over ``picture.pixels`` (no copy): keep ``picture`` alive as long as the QImage."""
    pixels = np.ascontiguousarray(picture.pixels, dtype=np.uint8)
    if pixels is not picture.pixels:
        raise ValueError("a display picture's pixels must be C-contiguous uint8")
    h, w = pixels.shape[:2]
    if pixels.ndim == 3:
        return QImage(pixels.data, w, h, pixels.strides[0], QImage.Format.Format_RGB888)
    if picture.grey_levels is None:
        return QImage(pixels.data, w, h, pixels.strides[0], QImage.Format.Format_Grayscale8)
    image = QImage(pixels.data, w, h, pixels.strides[0], QImage.Format.Format_Indexed8)
    grey = picture.grey_levels.astype(np.uint32)
    image.setColorTable((0xFF000000 | (grey << 16) | (grey << 8) | grey).tolist())
    return image


class PictureItem(QGraphicsItem):
    """Draws one DisplayPicture at scene (0, 0), one scene unit per pixel."""

    def __init__(self, parent: QGraphicsItem | None = None) -> None:
        super().__init__(parent)
        self._picture: DisplayPicture | None = None
        self._image: QImage | None = None
        self._smooth = True

    def set_picture(self, picture: DisplayPicture | None) -> None:
        self.prepareGeometryChange()
        # The QImage reads the picture's buffer: the two are kept and dropped together.
        self._picture = picture
        self._image = None if picture is None else picture_image(picture)
        self.update()

    def picture(self) -> DisplayPicture | None:
        return self._picture

    def image(self) -> QImage | None:
        """The QImage drawn (sharing the picture's pixels)."""
        return self._image

    def set_smooth(self, smooth: bool) -> None:
        """Smooth scaling (zoomed out) or nearest pixels (zoomed in)."""
        if smooth != self._smooth:
            self._smooth = smooth
            self.update()

    def boundingRect(self) -> QRectF:
        if self._image is None:
            return QRectF()
        return QRectF(0, 0, self._image.width(), self._image.height())

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        if self._image is None:
            return
        # The painter is clipped to what is exposed, so only the visible part is drawn.
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, self._smooth)
        painter.drawImage(0, 0, self._image)
