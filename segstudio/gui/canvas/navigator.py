"""The overview of a slide or a large image: its thumbnail in a corner of the canvas, the part in view outlined.

A click or a drag on the thumbnail centres the view there, at the same zoom (as in QuPath).
"""
from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QImage, QMouseEvent, QPainter, QPen
from PySide6.QtWidgets import QWidget

SIDE = 200  # the thumbnail's longer side on screen


class Navigator(QWidget):
    def __init__(self, canvas, thumbnail: QImage, slide_shape: tuple[int, int]) -> None:
        super().__init__(canvas.viewport())
        self.setObjectName("slideNavigator")
        self.canvas = canvas
        self.slide_height, self.slide_width = slide_shape
        scale = SIDE / max(self.slide_width, self.slide_height)
        self._scale = scale
        size = (max(1, round(self.slide_width * scale)), max(1, round(self.slide_height * scale)))
        self.thumbnail = thumbnail.scaled(*size, Qt.AspectRatioMode.IgnoreAspectRatio,
                                          Qt.TransformationMode.SmoothTransformation)
        self.setFixedSize(size[0] + 4, size[1] + 4)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.setToolTip("Overview: click or drag to move the view")
        canvas.view_changed.connect(self.update)
        canvas.view_changed.connect(self._place)
        self._place()
        self.show()

    def _place(self) -> None:
        viewport = self.canvas.viewport()
        self.move(viewport.width() - self.width() - 10, 10)

    def view_rect(self) -> QRectF:
        """The part of the slide in view, in thumbnail pixels."""
        rect = self.canvas.mapToScene(self.canvas.viewport().rect()).boundingRect()
        s = self._scale
        return QRectF(2 + rect.left() * s, 2 + rect.top() * s, rect.width() * s, rect.height() * s)

    def slide_point(self, pos: QPointF) -> QPointF:
        return QPointF((pos.x() - 2) / self._scale, (pos.y() - 2) / self._scale)

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor(20, 20, 24, 220))
        painter.drawImage(2, 2, self.thumbnail)
        painter.setClipRect(self.rect())
        painter.setPen(QPen(QColor(255, 220, 0), 2))
        painter.drawRect(self.view_rect().intersected(QRectF(self.rect()).adjusted(1, 1, -1, -1)))
        painter.end()

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            self.canvas.centerOn(self.slide_point(event.position()))
            event.accept()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        if event.buttons() & Qt.MouseButton.LeftButton:
            self.canvas.centerOn(self.slide_point(event.position()))
            event.accept()
