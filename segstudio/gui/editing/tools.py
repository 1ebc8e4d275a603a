"""Tool controllers: mouse input on the canvas becomes core.edits operations on the current document.

A controller gets mouse_press/mouse_move/mouse_release(canvas, scene_pos, event) from ImageCanvas and
optional activate/deactivate(canvas). Scene coordinates are image coordinates: pixel (x, y) covers the
square [x, x+1) x [y, y+1), so its centre is (x + 0.5, y + 0.5).

Every change goes through EditSession, which turns one press-to-release brush stroke (however many
mouse events it took) into one undo step and tells the document which rectangle changed, so the overlay
recolours only that rectangle while the user paints.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import shiboken6
from PySide6.QtCore import QEvent, QObject, QPointF, Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QMessageBox

from segstudio.core import edits
from segstudio.core.document import ImageStatus
from segstudio.core.history import merge_diffs
from segstudio.gui.documents.commands import MaskEditCommand
from segstudio.gui.documents.document import ImageDocument
from segstudio.gui.editing.cursor import BrushOutlineItem, PolygonPreviewItem

MAX_BRUSH_RADIUS = 256
DEFAULT_BRUSH_RADIUS = 6
# A fill covering more than this share of the image is asked about first. A nucleus, or a hole inside
# tissue, is far smaller; a quarter of the slide is more than any one object a technician fills, and is
# what a click that slips into the background through a gap in an outline floods.
FILL_QUESTION_SHARE = 0.25
# A press that moves further than this (screen pixels) before release draws a lasso instead of a vertex.
LASSO_DRAG_THRESHOLD = 4


def pixel_coords(scene_pos: QPointF) -> tuple[float, float]:
    """(y, x) in pixel-index units: the centre of pixel (x, y) maps to exactly (y, x)."""
    return scene_pos.y() - 0.5, scene_pos.x() - 0.5


class _Stroke:
    """One press-to-release stroke: the document it paints and its segments, merged on release."""

    def __init__(self, doc: ImageDocument, text: str) -> None:
        self.doc = doc
        self.text = text
        self.segments: list[edits.Diff] = []  # merged into one undo step on release


class EditSession(QObject):
    """What the tools edit (the current document), with which class, and how wide the brush is."""

    active_class_changed = Signal(int)
    brush_radius_changed = Signal(float)
    edited = Signal(object)  # the ImageDocument a step was just added to
    message = Signal(str)

    def __init__(self, current_document: Callable[[], ImageDocument | None], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._current_document = current_document
        self._active_class = 1
        self._brush_radius = float(DEFAULT_BRUSH_RADIUS)
        self._stroke: _Stroke | None = None
        # Asked before a read-only image is changed: may this window take it over now? (the autosave's)
        self.take_over: Callable[[ImageDocument], bool] = lambda doc: False

    # --- settings ------------------------------------------------------------------------------
    def document(self) -> ImageDocument | None:
        return self._current_document()

    @property
    def active_class(self) -> int:
        return self._active_class

    def set_active_class(self, class_id: int) -> None:
        class_id = int(class_id)
        if class_id != self._active_class:
            self._active_class = class_id
            self.active_class_changed.emit(class_id)

    @property
    def brush_radius(self) -> float:
        return self._brush_radius

    def set_brush_radius(self, radius: float) -> None:
        radius = float(min(max(radius, 0.0), MAX_BRUSH_RADIUS))
        if radius != self._brush_radius:
            self._brush_radius = radius
            self.brush_radius_changed.emit(radius)

    def editable(self, doc: ImageDocument) -> bool:
        """Whether tools may change ``doc``; says why not once per refused gesture."""
        if doc.read_only is None or self.take_over(doc):
            return True
        self.message.emit(f"{doc.title} is read-only here: {doc.read_only}")
        return False

    # --- strokes -------------------------------------------------------------------------------
    @property
    def stroking(self) -> bool:
        return self._stroke is not None

    def begin_stroke(self, doc: ImageDocument, text: str) -> None:
        self.finish_stroke()
        self._stroke = _Stroke(doc, text)

    def record(self, diff: edits.Diff | None) -> None:
        """Add one segment of the open stroke; the overlay refreshes just the segment's rectangle."""
        if diff is None or self._stroke is None:
            return
        self._stroke.segments.append(diff)
        self._stroke.doc.notify_region(diff.y0, diff.x0, *diff.shape)

    def finish_stroke(self) -> None:
        """Close the open stroke (release, a tool or image switch, or Undo pressed mid-stroke)."""
        stroke, self._stroke = self._stroke, None
        if stroke is None:
            return
        merged = merge_diffs(stroke.segments)
        if merged is not None:
            self._push(stroke.doc, merged, stroke.text)

    def commit(self, doc: ImageDocument, diff: edits.Diff | None, text: str) -> bool:
        """One-shot edits (fill, polygon, delete): already applied to the mask, now one undo step."""
        self.finish_stroke()
        if diff is None:
            return False
        doc.notify_region(diff.y0, diff.x0, *diff.shape)
        self._push(doc, diff, text)
        return True

    def _push(self, doc: ImageDocument, diff: edits.Diff, text: str) -> None:
        doc.undo_stack.push(MaskEditCommand(doc, diff, text))
        doc.set_status(ImageStatus.EDITED)
        self.edited.emit(doc)


class _CanvasTool(QObject):
    """Shared plumbing: event filters for keys, double-clicks and the cursor leaving the canvas."""

    name = ""
    changes_mask = True  # refused on an image another window edits

    def __init__(self, session: EditSession, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.canvas = None
        self._viewport = None  # kept to recognise its events without asking a widget being destroyed

    def activate(self, canvas) -> None:
        self.canvas = canvas
        self._viewport = canvas.viewport()
        canvas.viewport().setCursor(Qt.CursorShape.CrossCursor)
        canvas.viewport().installEventFilter(self)
        canvas.installEventFilter(self)

    def deactivate(self, canvas) -> None:
        self.session.finish_stroke()
        canvas.viewport().removeEventFilter(self)
        canvas.removeEventFilter(self)
        canvas.viewport().unsetCursor()
        self.canvas = None
        self._viewport = None

    def mouse_press(self, canvas, scene_pos: QPointF, event) -> None:
        pass

    def mouse_move(self, canvas, scene_pos: QPointF, event) -> None:
        pass

    def mouse_release(self, canvas, scene_pos: QPointF, event) -> None:
        pass

    def _document(self) -> ImageDocument | None:
        doc = self.session.document()
        if doc is None or doc.mask is None:
            return None
        return doc if not self.changes_mask or self.session.editable(doc) else None

    def _left_click(self, canvas, scene_pos: QPointF, event) -> tuple[ImageDocument, int, int] | None:
        """(document, x, y) for a left click on an image pixel of a document with a mask, else None."""
        doc = self._document()
        pixel = canvas.image_pixel(scene_pos)
        if doc is None or pixel is None or event.button() != Qt.MouseButton.LeftButton:
            return None
        return doc, pixel[0], pixel[1]


class BrushTool(_CanvasTool):
    """Round brush. Left button paints the active class (the eraser paints background); right button erases."""

    name = "brush"

    def __init__(self, session: EditSession, *, eraser: bool = False, parent: QObject | None = None) -> None:
        super().__init__(session, parent)
        self.eraser = eraser
        self.name = "eraser" if eraser else "brush"
        self.outline = BrushOutlineItem()
        self.outline.set_erasing(eraser)
        self._button = None
        self._last: tuple[float, float] | None = None
        self._cursor_pixel: tuple[int, int] | None = None
        session.brush_radius_changed.connect(self._on_radius_changed)

    def activate(self, canvas) -> None:
        super().activate(canvas)
        if self.outline.scene() is not canvas.scene():
            if self.outline.scene() is not None:
                self.outline.scene().removeItem(self.outline)
            canvas.scene().addItem(self.outline)

    def deactivate(self, canvas) -> None:
        self._end()
        self.outline.setVisible(False)
        super().deactivate(canvas)

    def mouse_press(self, canvas, scene_pos, event) -> None:
        if self._button is not None and not (event.buttons() & self._button):
            self._end()  # the release of the last stroke never arrived (a dialog took the mouse)
        doc = self._document()
        if doc is None or self._button is not None:
            return
        button = event.button()
        if button == Qt.MouseButton.LeftButton:
            value = 0 if self.eraser else self.session.active_class
            text = "Erase" if value == 0 else "Brush stroke"
        elif button == Qt.MouseButton.RightButton:
            value, text = 0, "Erase"
        else:
            return
        self._button, self._value = button, value
        self.outline.set_erasing(value == 0)
        self.session.begin_stroke(doc, text)
        point = pixel_coords(scene_pos)
        self.session.record(
            edits.paint_disk(doc.mask, point[0], point[1], self.session.brush_radius, value, hand=doc.hand)
        )
        self._last = point
        self._show_outline(scene_pos)

    def mouse_move(self, canvas, scene_pos, event) -> None:
        self._show_outline(scene_pos)
        if self._button is None or not (event.buttons() & self._button):
            return
        self._segment_to(scene_pos)

    def mouse_release(self, canvas, scene_pos, event) -> None:
        if self._button is None or event.button() != self._button:
            return
        self._segment_to(scene_pos)
        self._end()

    def _segment_to(self, scene_pos: QPointF) -> None:
        doc = self._document()
        if doc is None or self._last is None or not self.session.stroking:
            return
        point = pixel_coords(scene_pos)
        # The capsule between the previous and this event: no gaps however fast the cursor moved.
        diff = edits.paint_segment(doc.mask, self._last, point, self.session.brush_radius, self._value, hand=doc.hand)
        self.session.record(diff)
        self._last = point

    def _end(self) -> None:
        self._button = None
        self._last = None
        self.outline.set_erasing(self.eraser)
        self.session.finish_stroke()

    def _show_outline(self, scene_pos: QPointF) -> None:
        y, x = pixel_coords(scene_pos)
        self._cursor_pixel = (round(x), round(y))
        self.outline.place(self._cursor_pixel[0], self._cursor_pixel[1], self.session.brush_radius)

    def _on_radius_changed(self, radius: float) -> None:
        if self._cursor_pixel is not None and self.outline.isVisible():
            self.outline.place(*self._cursor_pixel, radius)

    def eventFilter(self, watched, event) -> bool:
        if watched is self._viewport and event.type() == QEvent.Type.Leave and shiboken6.isValid(self.outline):
            self.outline.setVisible(False)
        return False


def ask_before_large_fill(parent, region: edits.FillRegion) -> bool:
    """Ask whether to go on with a fill that reaches the image border or covers much of it."""
    where = "reaches the edge of the image" if region.touches_border else "is very large"
    box = QMessageBox(QMessageBox.Icon.Question, "Fill a large region?",
                      f"The region you clicked {where} and covers {region.share:.0%} of the image.",
                      parent=parent)
    box.setInformativeText("That is usually the background: filling it joins every object it touches "
                           "into one. Undo takes a fill back.")
    fill = box.addButton("Fill anyway", QMessageBox.ButtonRole.AcceptRole)
    cancel = box.addButton(QMessageBox.StandardButton.Cancel)
    box.setDefaultButton(cancel)
    box.setEscapeButton(cancel)
    box.exec()
    return box.clickedButton() is fill


def is_large_fill(region: edits.FillRegion) -> bool:
    return region.touches_border or region.share > FILL_QUESTION_SHARE


class FillTool(_CanvasTool):
    """Flood fill: the contiguous (4-connected) region of the clicked class becomes the active class.

    A region that reaches the image border or covers more than FILL_QUESTION_SHARE of it is asked about
    first: one click on the background would otherwise flood the whole slide.
    """

    name = "fill"

    def mouse_press(self, canvas, scene_pos, event) -> None:
        click = self._left_click(canvas, scene_pos, event)
        if click is None:
            return
        doc, x, y = click
        self.session.finish_stroke()
        value = self.session.active_class
        region = edits.find_region(doc.mask, y, x)
        if region.label != value and is_large_fill(region) and not ask_before_large_fill(canvas.window(), region):
            self.session.message.emit("Fill cancelled: nothing was changed.")
            return
        diff = edits.fill_region(doc.mask, region, value, hand=doc.hand)
        self.session.commit(doc, diff, "Fill")


class DeleteObjectTool(_CanvasTool):
    """Click an object to turn its whole connected region into background."""

    name = "delete"

    def mouse_press(self, canvas, scene_pos, event) -> None:
        click = self._left_click(canvas, scene_pos, event)
        if click is None:
            return
        doc, x, y = click
        if not self.session.commit(doc, edits.delete_object(doc.mask, y, x, hand=doc.hand), "Delete object"):
            self.session.message.emit("Nothing to delete here: that is background.")


class EyedropperTool(_CanvasTool):
    """Click to make the class under the cursor the active class."""

    name = "eyedropper"
    changes_mask = False
    picked = Signal(int)

    def mouse_press(self, canvas, scene_pos, event) -> None:
        click = self._left_click(canvas, scene_pos, event)
        if click is None:
            return
        doc, x, y = click
        class_id = edits.pick_class(doc.mask, y, x)
        if class_id in doc.classes:
            self.session.set_active_class(class_id)
            self.picked.emit(class_id)
        else:
            self.session.message.emit(f"Label {class_id} under the cursor has no class in the class list.")


class PolygonTool(_CanvasTool):
    """Polygon and lasso fill with the active class.

    Click to add vertices; double-click or Enter closes and fills; Esc aborts; Backspace removes the
    last vertex. Pressing and dragging draws a freehand lasso that fills when the button is released.
    """

    name = "polygon"

    def __init__(self, session: EditSession, parent: QObject | None = None) -> None:
        super().__init__(session, parent)
        self.preview = PolygonPreviewItem()
        self._points: list[QPointF] = []  # scene coordinates
        self._press_view_pos = None
        self._dragging = False
        self._button_down = False

    @property
    def points(self) -> list[QPointF]:
        return list(self._points)

    @property
    def drawing(self) -> bool:
        return bool(self._points)

    def activate(self, canvas) -> None:
        super().activate(canvas)
        if self.preview.scene() is not canvas.scene():
            if self.preview.scene() is not None:
                self.preview.scene().removeItem(self.preview)
            canvas.scene().addItem(self.preview)

    def deactivate(self, canvas) -> None:
        self.abort()
        super().deactivate(canvas)

    def mouse_press(self, canvas, scene_pos, event) -> None:
        if self._document() is None:
            return
        if event.button() == Qt.MouseButton.RightButton and self._points:
            self.close_polygon()
            return
        if event.button() != Qt.MouseButton.LeftButton:
            return
        self._button_down = True
        self._dragging = False
        self._press_view_pos = event.position()
        self._points.append(QPointF(scene_pos))
        self._update_preview(scene_pos)

    def mouse_move(self, canvas, scene_pos, event) -> None:
        if self._button_down and event.buttons() & Qt.MouseButton.LeftButton:
            if not self._dragging:
                moved = event.position() - self._press_view_pos
                self._dragging = math.hypot(moved.x(), moved.y()) >= LASSO_DRAG_THRESHOLD
            if self._dragging:
                last = self._points[-1]
                if math.hypot(scene_pos.x() - last.x(), scene_pos.y() - last.y()) >= 1.0:
                    self._points.append(QPointF(scene_pos))
        if self._points:
            self._update_preview(scene_pos)

    def mouse_release(self, canvas, scene_pos, event) -> None:
        if event.button() != Qt.MouseButton.LeftButton or not self._button_down:
            return
        self._button_down = False
        if self._dragging:
            self._points.append(QPointF(scene_pos))
            self.close_polygon()

    def close_polygon(self) -> bool:
        """Fill the polygon drawn so far with the active class; returns whether anything changed."""
        points, self._points = self._points, []
        self._button_down = self._dragging = False
        self.preview.set_points([])
        doc = self._document()
        if doc is None or len(points) < 3:
            if points:
                self.session.message.emit("A polygon needs at least three points.")
            return False
        vertices = [(p.x() - 0.5, p.y() - 0.5) for p in points]
        diff = edits.fill_polygon(doc.mask, vertices, self.session.active_class, hand=doc.hand)
        return self.session.commit(doc, diff, "Polygon fill")

    def abort(self) -> None:
        self._points = []
        self._button_down = self._dragging = False
        self.preview.set_points([])

    def remove_last_point(self) -> None:
        if self._points:
            self._points.pop()
            self._update_preview(None)

    def _update_preview(self, cursor: QPointF | None) -> None:
        self.preview.set_points(self._points, cursor)

    def eventFilter(self, watched, event) -> bool:
        if self.canvas is None:
            return False
        kind = event.type()
        if watched is self._viewport and kind == QEvent.Type.MouseButtonDblClick:
            if event.button() == Qt.MouseButton.LeftButton and self._points:
                self.close_polygon()
                return True
        if kind in (QEvent.Type.ShortcutOverride, QEvent.Type.KeyPress):
            return self._handle_key(event)
        return False

    def _handle_key(self, event: QKeyEvent) -> bool:
        keys = (Qt.Key.Key_Return, Qt.Key.Key_Enter, Qt.Key.Key_Escape, Qt.Key.Key_Backspace)
        if not self._points or event.key() not in keys:
            return False
        if event.type() == QEvent.Type.ShortcutOverride:
            # Claim the key before window shortcuts (Esc also cancels a prediction) see it.
            event.accept()
            return True
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self.close_polygon()
        elif event.key() == Qt.Key.Key_Escape:
            self.abort()
        else:
            self.remove_last_point()
        return True
