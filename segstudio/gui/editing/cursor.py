"""Tool feedback drawn in image coordinates: the brush outline and the polygon being drawn.

Both use cosmetic pens (one screen pixel wide at any zoom) drawn twice, dark under light, so they stay
visible over bright and dark tissue alike.
"""
from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import QGraphicsItem, QStyleOptionGraphicsItem, QWidget

FEEDBACK_Z = 10


def _pens() -> tuple[QPen, QPen]:
    under = QPen(QColor(0, 0, 0, 200), 3)
    under.setCosmetic(True)
    over = QPen(QColor(255, 255, 255, 230), 1)
    over.setCosmetic(True)
    return under, over


class BrushOutlineItem(QGraphicsItem):
    """A circle showing which pixels the brush will cover, centred on the pixel under the cursor."""

    def __init__(self, parent: QGraphicsItem | None = None) -> None:
        super().__init__(parent)
        self._centre = QPointF(0.0, 0.0)
        self._radius = 0.5
        self._erasing = False
        self.setZValue(FEEDBACK_Z)
        self.setAcceptedMouseButtons(Qt.MouseButton.NoButton)
        self.setVisible(False)

    def place(self, pixel_x: int, pixel_y: int, radius: float) -> None:
        """Centre on pixel (x, y). The brush covers pixel centres within `radius`: the circle encloses them."""
        centre = QPointF(pixel_x + 0.5, pixel_y + 0.5)
        reach = float(radius) + 0.5
        if centre != self._centre or reach != self._radius:
            self.prepareGeometryChange()
            self._centre, self._radius = centre, reach
        self.setVisible(True)

    def set_erasing(self, erasing: bool) -> None:
        if erasing != self._erasing:
            self._erasing = erasing
            self.update()

    @property
    def centre(self) -> QPointF:
        return QPointF(self._centre)

    @property
    def radius(self) -> float:
        return self._radius

    def boundingRect(self) -> QRectF:
        # A little extra for the pen: cosmetic pens are measured in screen pixels, at most a few image pixels.
        r = self._radius + 2.0
        return QRectF(self._centre.x() - r, self._centre.y() - r, 2 * r, 2 * r)

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        under, over = _pens()
        if self._erasing:
            over.setStyle(Qt.PenStyle.DashLine)
        for pen in (under, over):
            painter.setPen(pen)
            painter.drawEllipse(self._centre, self._radius, self._radius)


class PolygonPreviewItem(QGraphicsItem):
    """The outline of a polygon or lasso in progress, with a rubber band from the last vertex to the cursor."""

    def __init__(self, parent: QGraphicsItem | None = None) -> None:
        super().__init__(parent)
        self._path = QPainterPath()
        self._closing = QPainterPath()
        self.setZValue(FEEDBACK_Z)
        self.setAcceptedMouseButtons(Qt.MouseButton.NoButton)
        self.setVisible(False)

    def set_points(self, points: list[QPointF], cursor: QPointF | None = None) -> None:
        path = QPainterPath()
        closing = QPainterPath()
        if points:
            path.moveTo(points[0])
            for point in points[1:]:
                path.lineTo(point)
            end = points[-1]
            if cursor is not None:
                path.lineTo(cursor)
                end = cursor
            if len(points) >= 2:
                # Where the fill will close: from the cursor back to the first point.
                closing.moveTo(end)
                closing.lineTo(points[0])
        self.prepareGeometryChange()
        self._path, self._closing = path, closing
        self.setVisible(bool(points))

    def path(self) -> QPainterPath:
        return QPainterPath(self._path)

    def boundingRect(self) -> QRectF:
        return self._path.boundingRect().united(self._closing.boundingRect()).adjusted(-2, -2, 2, 2)

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        under, over = _pens()
        over.setStyle(Qt.PenStyle.DashLine)
        for pen in (under, over):
            painter.setPen(pen)
            painter.drawPath(self._path)
        under.setColor(QColor(0, 0, 0, 110))
        over.setColor(QColor(255, 255, 255, 150))
        over.setStyle(Qt.PenStyle.DotLine)
        for pen in (under, over):
            painter.setPen(pen)
            painter.drawPath(self._closing)
