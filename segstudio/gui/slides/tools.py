"""Painting a slide's labels at any zoom: brush, eraser and polygon, in full-resolution pixels.

The brush radius is set in screen pixels, as the user sees it: at overview zoom one dab covers many
full-resolution pixels and writes every one of them (core.label_store paints chunk by chunk). A stroke's
segments merge into one undo step. Zoomed out past full resolution, the screen's label level is painted at
once and the full-resolution pixels on a background thread (SlideDocument.paint_in_background, and
fill_polygon_in_background for a polygon), so the window never waits for millions of pixels.
"""
from __future__ import annotations

from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QColor, QPainterPath, QPen
from PySide6.QtWidgets import QGraphicsPathItem


class SlideBrushTool:
    """Brush (value = the class id) or eraser (value 0)."""

    def __init__(self, doc, value_of, radius_of, *, erase: bool = False) -> None:
        self.doc, self.value_of, self.radius_of, self.erase = doc, value_of, radius_of, erase
        self._last: QPointF | None = None
        self._stroke = None
        self._record: dict | None = None  # a stroke painted in the background: chunks before it
        self._level = 0

    def _value(self) -> int:
        return 0 if self.erase else int(self.value_of())

    def _segment(self, canvas, a: QPointF, b: QPointF) -> None:
        radius = self.radius_of() / max(canvas.zoom(), 1e-9)
        store = self.doc.store
        if self._record is not None:
            self.doc.paint_in_background((a.x(), a.y()), (b.x(), b.y()), radius, self._value(), self._record,
                                         self._level)
            return
        diff = store.paint_segment((a.x(), a.y()), (b.x(), b.y()), radius, self._value())
        if diff is None:
            return
        if self._stroke is None:
            self._stroke = diff
        else:
            store.merge(self._stroke, diff)
        self.doc.notify_region(*diff.box(store.chunk))  # redrawn, and saved within the autosave delay

    def mouse_press(self, canvas, pos: QPointF, event) -> None:
        if event.button() != Qt.MouseButton.LeftButton:
            return
        self._last, self._stroke = QPointF(pos), None
        self._level = self.doc.store.best_level(1.0 / max(canvas.zoom(), 1e-9))
        if self._level > 0:
            self._record = {}
        else:
            self._record = None
            self.doc.wait_painted()  # strokes queued at overview first: they were made first
        self._segment(canvas, pos, pos)

    def mouse_move(self, canvas, pos: QPointF, event) -> None:
        if self._last is None or not event.buttons() & Qt.MouseButton.LeftButton:
            return
        self._segment(canvas, self._last, pos)
        self._last = QPointF(pos)

    def mouse_release(self, canvas, pos: QPointF, event) -> None:
        if self._last is None:
            return
        self._last = None
        text = "Erase" if self.erase else "Brush stroke"
        if self._record is not None:
            self.doc.push_stroke(self._record, text)
            self._record = None
        elif self._stroke is not None:
            self.doc.push_diff(self._stroke, text)
        self._stroke = None


class SlidePolygonTool:
    """Click the corners, double-click (or click the first corner) to fill; Escape-free: right click cancels."""

    def __init__(self, doc, value_of) -> None:
        self.doc, self.value_of = doc, value_of
        self.points: list[QPointF] = []
        self._outline: QGraphicsPathItem | None = None

    def deactivate(self, canvas) -> None:
        self._clear(canvas)

    def _clear(self, canvas) -> None:
        self.points = []
        if self._outline is not None:
            canvas.scene().removeItem(self._outline)
            self._outline = None

    def _draw(self, canvas, hover: QPointF | None = None) -> None:
        if self._outline is None:
            self._outline = QGraphicsPathItem()
            pen = QPen(QColor(255, 220, 0), 2)
            pen.setCosmetic(True)
            self._outline.setPen(pen)
            self._outline.setZValue(5)
            canvas.scene().addItem(self._outline)
        path = QPainterPath(self.points[0])
        for point in self.points[1:] + ([hover] if hover is not None else []):
            path.lineTo(point)
        self._outline.setPath(path)

    def mouse_press(self, canvas, pos: QPointF, event) -> None:
        if event.button() == Qt.MouseButton.RightButton:
            self._clear(canvas)
            return
        if event.button() != Qt.MouseButton.LeftButton:
            return
        close_enough = 8 / max(canvas.zoom(), 1e-9)
        if len(self.points) >= 3 and (abs(pos.x() - self.points[0].x()) + abs(pos.y() - self.points[0].y())
                                      < close_enough):
            self.finish(canvas)
            return
        self.points.append(QPointF(pos))
        self._draw(canvas)

    def mouse_move(self, canvas, pos: QPointF, event) -> None:
        if self.points:
            self._draw(canvas, pos)

    def mouse_release(self, canvas, pos: QPointF, event) -> None:
        pass

    def finish(self, canvas) -> None:
        points = [(p.x(), p.y()) for p in self.points]
        self._clear(canvas)
        level = self.doc.store.best_level(1.0 / max(canvas.zoom(), 1e-9))
        if level > 0:  # zoomed out: shown at once, its full-resolution pixels painted in the background
            self.doc.fill_polygon_in_background(points, int(self.value_of()), level)
            return
        self.doc.wait_painted()  # strokes queued at overview first: they were made first
        diff = self.doc.store.paint_polygon(points, int(self.value_of()))
        if diff is not None:
            self.doc.labels_changed.emit(*diff.box(self.doc.store.chunk))
            self.doc.push_diff(diff, "Polygon")
