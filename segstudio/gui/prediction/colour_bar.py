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
    """A horizontal colour ramp with tick labels under it and a caption (the quantity and its unit) above."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("colourBar")
        self._lut = colormap_lut("viridis")
        self.caption = ""
        self.ticks: list[str] = []
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def set_scale(self, lut: np.ndarray, caption: str, ticks: list[str]) -> None:
        self._lut = np.ascontiguousarray(lut, dtype=np.uint8).reshape(256, 3)
        self.caption = caption
        self.ticks = list(ticks)
        self.setToolTip(caption)
        self.update()

    def sizeHint(self) -> QSize:
        line = self.fontMetrics().lineSpacing()
        return QSize(200, 2 * line + 16)

    def minimumSizeHint(self) -> QSize:
        return QSize(120, self.sizeHint().height())

    def paintEvent(self, _event) -> None:
        painter = QPainter(self)
        line = self.fontMetrics().lineSpacing()
        margin = 4
        painter.drawText(QRect(0, 0, self.width(), line), Qt.AlignmentFlag.AlignLeft, self.caption)
        ramp = QRect(margin, line + 2, self.width() - 2 * margin, 12)
        image = QImage(self._lut.data, 256, 1, 3 * 256, QImage.Format.Format_RGB888)
        painter.drawImage(ramp, image)
        painter.drawRect(ramp.adjusted(0, 0, -1, -1))
        if self.ticks:
            top = ramp.bottom() + 2
            last = len(self.ticks) - 1
            for index, text in enumerate(self.ticks):
                x = ramp.left() + (ramp.width() * index) // max(1, last)
                width = self.fontMetrics().horizontalAdvance(text)
                left = min(max(0, x - width // 2), self.width() - width)
                painter.drawText(left, top + self.fontMetrics().ascent(), text)
        painter.end()
