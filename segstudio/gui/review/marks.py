"""The review queue drawn over the image: the region to check now, and the regions already checked.

One item paints every region mark inside the exposed rectangle, so a slide with thousands of regions
costs no item per region. Pens are cosmetic: a mark is as thick at overview zoom as up close.
"""
from __future__ import annotations

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QPainter, QPen
from PySide6.QtWidgets import QGraphicsItem

CURRENT = QColor(255, 200, 0)
CHECKED = QColor(60, 200, 90)
CORRECTED = QColor(70, 150, 255)


def _pen(colour: QColor, width: float, style=Qt.PenStyle.SolidLine) -> QPen:
    pen = QPen(colour, width, style)
    pen.setCosmetic(True)
    return pen


class ReviewMarks(QGraphicsItem):
    """Outlines of a core.review.ReviewQueue's regions in image (level-0) pixels."""

    def __init__(self, shape: tuple[int, int]) -> None:
        super().__init__()
        self._bounds = QRectF(0, 0, shape[1], shape[0])
        self.queue = None
        self.setZValue(20)
        self.setAcceptedMouseButtons(Qt.MouseButton.NoButton)

    def set_queue(self, queue) -> None:
        self.queue = queue
        self.update()

    def set_shape(self, height: int, width: int) -> None:
        self.prepareGeometryChange()
        self._bounds = QRectF(0, 0, width, height)

    def boundingRect(self) -> QRectF:
        return self._bounds

    def paint(self, painter: QPainter, option, widget=None) -> None:
        if self.queue is None:
            return
        exposed = option.exposedRect
        painter.setBrush(Qt.BrushStyle.NoBrush)
        current = self.queue.current
        for region in self.queue.regions:
            if not region.done or region is current:
                continue
            rect = QRectF(region.x0, region.y0, region.w, region.h)
            if rect.intersects(exposed):
                painter.setPen(_pen(CORRECTED if region.corrected else CHECKED, 1.5, Qt.PenStyle.DashLine))
                painter.drawRect(rect.adjusted(2, 2, -2, -2))
        if current is not None:
            painter.setPen(_pen(CURRENT, 3))
            painter.drawRect(QRectF(current.x0, current.y0, current.w, current.h))
