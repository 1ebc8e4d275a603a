"""Object tools on the canvas: delete one object, merge two by a drag, split one with a cut line, paint a
new object. Each gesture becomes one core.objects.editing call and one undo step on the document."""
from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QLineF, QObject, QPointF, Qt
from PySide6.QtGui import QPen
from PySide6.QtWidgets import QGraphicsLineItem

from segstudio.core.objects import editing

NEW_OBJECT_RADIUS = 4


def _yx(scene_pos: QPointF) -> tuple[float, float]:
    """Pixel-index (y, x) of a scene point (pixel (x, y) covers [x, x+1) x [y, y+1))."""
    return scene_pos.y() - 0.5, scene_pos.x() - 0.5


class ObjectTool(QObject):
    """A gesture from press to release; ``run(doc, start, end, points)`` makes the ObjectDiff."""

    text = ""

    def __init__(self, documents: Callable, class_id: Callable[[], int], parent=None) -> None:
        super().__init__(parent)
        self._documents = documents  # () -> the current ImageDocument with its objects found, or None
        self._class_id = class_id
        self._start: QPointF | None = None
        self._points: list[tuple[float, float]] = []
        self._line: QGraphicsLineItem | None = None

    def activate(self, canvas) -> None:
        canvas.viewport().setCursor(Qt.CursorShape.CrossCursor)

    def deactivate(self, canvas) -> None:
        self._clear(canvas)

    def mouse_press(self, canvas, scene_pos, event) -> None:
        if event.button() != Qt.MouseButton.LeftButton:
            return
        self._start = scene_pos
        self._points = [_yx(scene_pos)]
        if self.draws_line:
            self._line = QGraphicsLineItem(QLineF(scene_pos, scene_pos))
            pen = QPen(Qt.GlobalColor.white, 0)
            pen.setCosmetic(True)
            pen.setStyle(Qt.PenStyle.DashLine)
            self._line.setPen(pen)
            self._line.setZValue(5)
            canvas.scene().addItem(self._line)

    def mouse_move(self, canvas, scene_pos, event) -> None:
        if self._start is None:
            return
        self._points.append(_yx(scene_pos))
        if self._line is not None:
            self._line.setLine(QLineF(self._start, scene_pos))

    def mouse_release(self, canvas, scene_pos, event) -> None:
        if self._start is None or event.button() != Qt.MouseButton.LeftButton:
            return
        start = _yx(self._start)
        points = self._points + [_yx(scene_pos)]
        self._clear(canvas)
        doc = self._documents()
        if doc is None:
            return
        model = doc.model
        diff = self.run(model, start, _yx(scene_pos), points)
        if diff is None:
            doc.notice.emit(self.nothing_done)
            return
        doc.push_diff(diff, self.text)

    def _clear(self, canvas) -> None:
        if self._line is not None:
            canvas.scene().removeItem(self._line)
            self._line = None
        self._start = None

    draws_line = False
    nothing_done = ""

    def run(self, model, start, end, points):
        raise NotImplementedError


class DeleteOneObjectTool(ObjectTool):
    text = "Delete Object"
    nothing_done = "Click on an object to delete it (only that object, not the ones touching it)."

    def run(self, model, start, end, points):
        return editing.delete_object(model.objects, model.mask, model.hand, *start)


class MergeObjectsTool(ObjectTool):
    text = "Merge Objects"
    draws_line = True
    nothing_done = "Drag from one object onto another to merge them."

    def run(self, model, start, end, points):
        return editing.merge_objects(model.objects, model.mask, model.hand, start, end)


class SplitObjectTool(ObjectTool):
    text = "Split Object"
    draws_line = True
    nothing_done = "Draw the cut right across the object, from background to background."

    def run(self, model, start, end, points):
        return editing.split_object(model.objects, model.mask, model.hand, start, end)


class NewObjectTool(ObjectTool):
    text = "New Object"
    nothing_done = "A new object is painted on the background only: start outside the other objects."

    def run(self, model, start, end, points):
        return editing.new_object(model.objects, model.mask, model.hand, points, NEW_OBJECT_RADIUS,
                                  self._class_id())
