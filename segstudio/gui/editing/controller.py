"""Correcting masks in the window: tools, the class palette, undo/redo, the image list and autosave.

The main window only creates an EditingController; this module wires the tool controllers, docks and
actions to the open documents, so the window class stays small.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass

import shiboken6
from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QAction, QActionGroup, QColor, QKeySequence, QUndoGroup
from PySide6.QtWidgets import QColorDialog, QMessageBox

from segstudio.core.words import count
from segstudio.gui.documents.autosave import AutosaveController
from segstudio.gui.documents.document import ImageDocument
from segstudio.gui.documents.images_panel import ImagesPanel
from segstudio.gui.editing.classes import SessionClasses
from segstudio.gui.editing.classes_panel import ClassesPanel
from segstudio.gui.editing.tools import (
    MAX_BRUSH_RADIUS,
    BrushTool,
    DeleteObjectTool,
    EditSession,
    EyedropperTool,
    FillTool,
    PolygonTool,
)
from segstudio.gui.editing.tools_panel import ToolsPanel


@dataclass(frozen=True)
class ToolSpec:
    name: str
    text: str
    shortcut: str
    tip: str


TOOL_SPECS = (
    ToolSpec("brush", "&Brush", "B", "Paint the selected class (right button erases)"),
    ToolSpec("eraser", "&Eraser", "E", "Paint background"),
    ToolSpec("fill", "&Fill", "G", "Fill the touching region of the clicked class with the selected class"),
    ToolSpec("polygon", "&Polygon / Lasso", "L",
             "Click corners or drag a lasso; double-click or Enter fills, Esc cancels"),
    ToolSpec("eyedropper", "Eye&dropper", "I", "Select the class under the cursor"),
    ToolSpec("delete", "&Delete Object", "D", "Turn the clicked object into background"),
    ToolSpec("pan", "Pa&n", "N", "Drag to move the view (middle button or Space+drag work with any tool)"),
)


def _brush_step(radius: float) -> float:
    # Proportional steps, so [ and ] are as useful for a 2-pixel brush as for a 100-pixel one.
    return max(1.0, round(radius * 0.2))


class EditingController(QObject):
    def __init__(self, window) -> None:
        super().__init__(window)
        self.window = window
        self.session = EditSession(lambda: window.current, self)
        self.classes = SessionClasses(window.all_documents, self)  # hidden pages keep their classes' meaning
        self.undo_group = QUndoGroup(self)
        self._known: list[ImageDocument] = []
        self._wired: weakref.WeakSet[ImageDocument] = weakref.WeakSet()  # a page shown again is wired already
        self._previous: ImageDocument | None = None

        self.tools = {
            "brush": BrushTool(self.session, parent=self),
            "eraser": BrushTool(self.session, eraser=True, parent=self),
            "fill": FillTool(self.session, self),
            "polygon": PolygonTool(self.session, self),
            "eyedropper": EyedropperTool(self.session, self),
            "delete": DeleteObjectTool(self.session, self),
            "pan": None,
        }
        self._build_actions()
        self._build_panels()
        self.autosave = AutosaveController(window, self.classes, busy=lambda: self.session.stroking)
        self.session.take_over = self.autosave.take_over
        self._connect()
        self.select_tool("brush")
        self._show_classes()
        self.autosave.start()

    # --- construction --------------------------------------------------------------------------
    def _build_actions(self) -> None:
        window, menu = self.window, self.window.menus["tools"]
        self.tool_group = QActionGroup(self)
        self.tool_actions: dict[str, QAction] = {}
        for spec in TOOL_SPECS:
            action = QAction(spec.text, window)
            action.setObjectName(spec.name)
            action.setShortcut(QKeySequence(spec.shortcut))
            action.setToolTip(f"{spec.tip} ({spec.shortcut})")
            action.setStatusTip(spec.tip)
            action.setCheckable(True)
            action.triggered.connect(lambda _=False, n=spec.name: self.select_tool(n))
            self.tool_group.addAction(action)
            self.tool_actions[spec.name] = action
            menu.addAction(action)
        menu.addSeparator()
        self.smaller_brush = QAction("Smaller Brush", window)
        self.smaller_brush.setShortcut(QKeySequence("["))
        self.smaller_brush.triggered.connect(lambda: self.change_brush(-1))
        self.larger_brush = QAction("Larger Brush", window)
        self.larger_brush.setShortcut(QKeySequence("]"))
        self.larger_brush.triggered.connect(lambda: self.change_brush(+1))
        menu.addActions([self.smaller_brush, self.larger_brush])
        classes_menu = menu.addMenu("Select &Class")
        classes_menu.setProperty("shortcut_summary", ("Select a class by its place in the list", "1-9; 0 background"))
        self.class_key_actions: list[QAction] = []
        for position in range(10):
            text = "Background" if position == 0 else f"Class {position} in the List"
            action = QAction(text, window)
            action.setShortcut(QKeySequence(str(position)))
            action.triggered.connect(lambda _=False, p=position: self.select_class_at(p))
            classes_menu.addAction(action)
            self.class_key_actions.append(action)
        # Listed in Help > Keyboard Shortcuts and checked against the window's own keys.
        window.actions.register(*self.tool_actions.values(), self.smaller_brush, self.larger_brush,
                                *self.class_key_actions)

    def _build_panels(self) -> None:
        window = self.window
        self.tools_panel = ToolsPanel(list(self.tool_actions.values()), MAX_BRUSH_RADIUS)
        self.tools_panel.set_brush_radius(self.session.brush_radius)
        self.tools_dock = window.add_panel(self.tools_panel, "Tools")
        self.classes_panel = ClassesPanel()
        self.classes_dock = window.add_panel(self.classes_panel, "Classes")
        self.images_panel = ImagesPanel()
        # Left of the image, at full height: the right-hand column has no room for more than two rows, and
        # slides are usually square, so the canvas loses no image width on a wide screen.
        self.images_dock = window.add_panel(self.images_panel, "Images", Qt.DockWidgetArea.LeftDockWidgetArea)
        window.canvas.set_mask_opacity(self.tools_panel.opacity())

    def _connect(self) -> None:
        window, a = self.window, self.window.actions
        a.undo.triggered.connect(self.undo)
        a.redo.triggered.connect(self.redo)
        self.undo_group.canUndoChanged.connect(a.undo.setEnabled)
        self.undo_group.canRedoChanged.connect(a.redo.setEnabled)
        self.undo_group.undoTextChanged.connect(lambda text: a.undo.setText(f"&Undo {text}".strip()))
        self.undo_group.redoTextChanged.connect(lambda text: a.redo.setText(f"&Redo {text}".strip()))
        self.undo_group.cleanChanged.connect(lambda _clean: self._update_modified())

        window.documents_changed.connect(self._on_documents_changed)
        window.document_changed.connect(self._on_document_changed)

        self.session.message.connect(lambda text: window.statusBar().showMessage(text, 6000))
        self.session.active_class_changed.connect(self.classes_panel.set_active)
        self.session.brush_radius_changed.connect(self.tools_panel.set_brush_radius)
        self.tools_panel.brush_radius_changed.connect(self.session.set_brush_radius)
        self.tools_panel.opacity_changed.connect(window.canvas.set_mask_opacity)
        self.tools["eyedropper"].picked.connect(self._on_picked)

        self.classes.changed.connect(self._show_classes)
        self.classes.message.connect(lambda text: window.statusBar().showMessage(text, 10000))
        self.classes_panel.class_selected.connect(self.session.set_active_class)
        self.classes_panel.add_requested.connect(self.add_class)
        self.classes_panel.rename_requested.connect(self.rename_class)
        self.classes_panel.recolor_requested.connect(self.recolor_class)
        self.classes_panel.move_requested.connect(self.move_class)
        self.classes_panel.remove_requested.connect(self.remove_class)

        self.images_panel.document_selected.connect(window.set_current)
        self.autosave.saved.connect(self._refresh_document)
        self.autosave.failed.connect(lambda doc, _reason: self._refresh_document(doc))

    # --- tools ---------------------------------------------------------------------------------
    def select_tool(self, name: str) -> None:
        self.session.finish_stroke()
        self.window.canvas.set_tool(self.tools[name])
        self.tool_actions[name].setChecked(True)

    def current_tool_name(self) -> str:
        tool = self.window.canvas.tool()
        return next(name for name, t in self.tools.items() if t is tool)

    def change_brush(self, direction: int) -> None:
        radius = self.session.brush_radius
        self.session.set_brush_radius(radius + direction * _brush_step(radius))

    def _on_picked(self, class_id: int) -> None:
        name = self.classes.table.get(class_id).name
        self.window.statusBar().showMessage(f"Painting with {name}", 4000)

    # --- undo ----------------------------------------------------------------------------------
    def undo(self) -> None:
        self.session.finish_stroke()  # an Undo pressed mid-stroke undoes that stroke, whole
        self.undo_group.undo()

    def redo(self) -> None:
        self.session.finish_stroke()
        self.undo_group.redo()

    def _update_modified(self) -> None:
        doc = self.window.current
        self.window.setWindowModified(doc is not None and doc.unsaved)

    # --- documents -----------------------------------------------------------------------------
    def _sync_documents(self) -> None:
        now = list(self.window.documents)
        for doc in now:
            if doc not in self._known:
                self._register(doc)
        for doc in self._known:
            if doc not in now:
                self._unregister(doc)
        self._known = now

    def _register(self, doc: ImageDocument) -> None:
        self.classes.attach(doc)
        self.undo_group.addStack(doc.undo_stack)
        self.autosave.restore(doc)
        self.autosave.watch(doc)
        if doc in self._wired:
            return
        self._wired.add(doc)
        doc.status_changed.connect(lambda _s, d=doc: self._refresh_document(d))
        doc.undo_stack.cleanChanged.connect(lambda _c, d=doc: self._refresh_document(d))
        doc.display_changed.connect(lambda d=doc: self._thumbnail_outdated(d))

    def _thumbnail_outdated(self, doc: ImageDocument) -> None:
        if shiboken6.isValid(self.images_panel) and doc in self.window.documents:
            self.images_panel.forget_thumbnail(doc)

    def _unregister(self, doc: ImageDocument) -> None:
        if self.autosave.needs_saving(doc):
            self.autosave.save_async(doc)
        self.undo_group.removeStack(doc.undo_stack)
        if self._previous is doc:
            self._previous = None

    def _on_documents_changed(self) -> None:
        self._sync_documents()
        self.autosave.release_closed()
        self.images_panel.set_documents(self.window.documents, self.window.current)

    def _on_document_changed(self, doc: ImageDocument | None) -> None:
        self.session.finish_stroke()
        self.tools["polygon"].abort()
        self._sync_documents()
        previous, self._previous = self._previous, doc
        if previous is not None and previous is not doc and previous in self.window.documents:
            if self.autosave.needs_saving(previous):
                self.autosave.save_async(previous)
        self.undo_group.setActiveStack(doc.undo_stack if doc is not None else None)
        self._update_modified()
        if doc is not None and self.images_panel.item_for(doc) is None:
            self.images_panel.set_documents(self.window.documents, doc)
        self.images_panel.set_current(doc)

    def _refresh_document(self, doc: ImageDocument) -> None:
        if not shiboken6.isValid(self.images_panel):
            return  # the window is being torn down; its documents still report their last changes
        if doc in self.window.documents:
            self.images_panel.update_document(doc)
        if doc is self.window.current:
            self._update_modified()

    # --- classes -------------------------------------------------------------------------------
    def _show_classes(self) -> None:
        table = self.classes.table
        if self.session.active_class not in table.ids():
            others = [i for i in table.ids() if i != 0]
            self.session.set_active_class(others[0] if others else 0)
        self.classes_panel.set_classes(table, self.session.active_class)

    def select_class_at(self, position: int) -> None:
        ids = self.classes.table.ids()
        if position < len(ids):
            self.session.set_active_class(ids[position])
            self.window.statusBar().showMessage(f"Painting with {self.classes.table.get(ids[position]).name}", 3000)

    def add_class(self) -> None:
        try:
            cls = self.classes.add()
        except ValueError as err:
            self._refuse("Cannot add a class", err)
            return
        self.session.set_active_class(cls.id)
        item = self.classes_panel.item_for(cls.id)
        if item is not None and self.classes_panel.isVisible():
            self.classes_panel.list.editItem(item)  # the user names it straight away

    def rename_class(self, class_id: int, name: str) -> None:
        try:
            self.classes.rename(class_id, name)
        except ValueError as err:
            self._refuse("Cannot rename the class", err)
            self._show_classes()

    def choose_color(self, current: tuple[int, int, int], name: str) -> tuple[int, int, int] | None:
        colour = QColorDialog.getColor(QColor(*current), self.window, f"Colour of {name}")
        return (colour.red(), colour.green(), colour.blue()) if colour.isValid() else None

    def recolor_class(self, class_id: int) -> None:
        cls = self.classes.table.get(class_id)
        rgb = self.choose_color(cls.color, cls.name)
        if rgb is not None:
            self.classes.recolor(class_id, rgb)

    def move_class(self, class_id: int, position: int) -> None:
        try:
            self.classes.move(class_id, position)
        except ValueError as err:
            self._refuse("Cannot move the class", err)
            self._show_classes()

    def confirm_remove(self, name: str, pixels: int, images: int) -> bool:
        answer = QMessageBox.question(
            self.window, "Remove class",
            f"{count(pixels, 'pixel')} in {count(images, 'open image')} are labelled {name}. "
            "Removing the class turns them into background (Undo brings them back).",
            QMessageBox.StandardButton.Ok | QMessageBox.StandardButton.Cancel,
        )
        return answer == QMessageBox.StandardButton.Ok

    def remove_class(self, class_id: int) -> None:
        try:
            cls = self.classes.table.get(class_id)
            used = self.classes.pixels_using(class_id)
            if used and not self.confirm_remove(cls.name, sum(used.values()), len(used)):
                return
            self.classes.remove(class_id)
        except ValueError as err:
            self._refuse("Cannot remove the class", err)

    def _refuse(self, title: str, err: Exception) -> None:
        self.window.statusBar().showMessage(f"{title}: {err}", 8000)
        self.window.show_error(title, str(err))

    # --- quitting ------------------------------------------------------------------------------
    def prepare_to_quit(self) -> bool:
        self.session.finish_stroke()
        return self.autosave.prepare_to_quit()
