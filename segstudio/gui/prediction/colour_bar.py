"""The legend of the confidence and uncertainty views: the colour scale, its end values and its unit."""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRect, QSize, Qt
from PySide6.QtGui import QImage, QPainter
from PySide6.QtWidgets import QSizePolicy, QWidget


def colormap_lut(name: str) -> np.ndarray:
    """(256, 3) uint8 RGB of an OpenCV colour map ('viridis', 'inferno'), so the canvas and the bar agree."""
    import cv2

    code = {"viridis": cv2.COLORMAP_VIRIDIS, "inferno": cv2.COLORMAP_INFERNO}[name]
    ramp = np.arange(256, dtype=np.uint8).reshape(256, 1)
    return np.ascontiguousarray(cv2.applyColorMap(ramp, code)[:, 0, ::-1])


class ColourBar(QWidget):
    """A horizontal colour ramp with its end values and a caption (the quantity and its unit) under it."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("colourBar")
        self._lut = colormap_lut("viridis")
        self.caption = ""
        self.ticks: list[str] = []
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def set_scale(self, lut: np.ndarray, caption: str, ticks: list[str], explanation: str = "") -> None:
        self._lut = np.ascontiguousarray(lut, dtype=np.uint8).reshape(256, 3)
        self.caption = caption
        self.ticks = list(ticks)
        self.setToolTip(explanation or caption)
        self.update()

    def sizeHint(self) -> QSize:
        return QSize(200, self.fontMetrics().lineSpacing() + 14)

    def minimumSizeHint(self) -> QSize:
        return QSize(120, self.sizeHint().height())

    def paintEvent(self, _event) -> None:
        """The ramp, then one line: the first tick at its left end, the last at its right, the caption between."""
        painter = QPainter(self)
        metrics = self.fontMetrics()
        margin = 4
        ramp = QRect(margin, 1, self.width() - 2 * margin, 10)
        image = QImage(self._lut.data, 256, 1, 3 * 256, QImage.Format.Format_RGB888)
        painter.drawImage(ramp, image)
        painter.drawRect(ramp.adjusted(0, 0, -1, -1))
        text = QRect(ramp.left(), ramp.bottom() + 2, ramp.width(), metrics.lineSpacing())
        first, last = (self.ticks[0], self.ticks[-1]) if self.ticks else ("", "")
        painter.drawText(text, Qt.AlignmentFlag.AlignLeft, first)
        painter.drawText(text, Qt.AlignmentFlag.AlignRight, last)
        room = text.width() - 2 * max(metrics.horizontalAdvance(first), metrics.horizontalAdvance(last)) - 16
        caption = metrics.elidedText(self.caption, Qt.TextElideMode.ElideRight, max(0, room))
        painter.drawText(text, Qt.AlignmentFlag.AlignHCenter, caption)
        painter.end()
