"""The main window: menus, the canvas, the status bar and the docks.

It holds the list of open documents and which one is shown, and composes the features: each feature
package (prediction, inspector, editing, exporting, training) adds its own docks and actions, and the
window connects what one feature offers to what another needs, so none reaches into another's widgets.
"""
from __future__ import annotations

from collections.abc import Iterable

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QCloseEvent, QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QDockWidget, QMainWindow, QMessageBox, QWidget

from segstudio.core.words import count
from segstudio.gui.actions import build_menus, create_actions, show_about, show_shortcuts
from segstudio.gui.canvas.view import ImageCanvas
from segstudio.gui.documents.document import ImageDocument
from segstudio.gui.editing.controller import EditingController
from segstudio.gui.exporting.controller import ExportController
from segstudio.gui.inspector.controller import InspectorController
from segstudio.gui.model_host import ModelHost
from segstudio.gui.models.controller import ModelsController
from segstudio.gui.objects.controller import ObjectsController
from segstudio.gui.opening import OpeningController
from segstudio.gui.prediction.controller import PredictionController
from segstudio.gui.review.controller import ReviewController
from segstudio.gui.session import SessionController
from segstudio.gui.status_bar import StatusLabels
from segstudio.gui.training.controller import TrainingController

APP_TITLE = "segstudio"


class MainWindow(QMainWindow):
    document_changed = Signal(object)  # the current ImageDocument or None
    documents_changed = Signal()  # a document was opened or closed

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(APP_TITLE)
        self.setObjectName("mainWindow")
        self.setAcceptDrops(True)
        self.resize(1280, 820)

        self.documents: list[ImageDocument] = []
        self.current: ImageDocument | None = None
        self.last_error: str | None = None

        self.canvas = ImageCanvas(self)
        self.setCentralWidget(self.canvas)
        # The right-hand column (model, tools, classes, images) runs the full height; docks along the
        # bottom (inspector, training) sit under the image only, so each side keeps its room.
        self.setCorner(Qt.Corner.BottomRightCorner, Qt.DockWidgetArea.RightDockWidgetArea)
        self.setCorner(Qt.Corner.TopRightCorner, Qt.DockWidgetArea.RightDockWidgetArea)
        self.actions = create_actions(self)
        self.menus = build_menus(self, self.actions)
        # One thread holds the warm model for every feature that runs it (Predict, the inspector).
        self.model_host = ModelHost(self)
        self.status = StatusLabels(self.statusBar(), self.canvas, self.model_host, lambda: self.current)
        self.opening = OpeningController(self)
        self._connect_actions()
        self._show_placeholder()
        # Each feature lives in its own controller, which adds its dock, actions and shortcuts.
        self.prediction = PredictionController(self)
        self.editing = EditingController(self)
        self.inspector = InspectorController(self)
        self.opening.slide_window_opened.connect(self.inspector.attach_slide)
        self.exporting = ExportController(self)
        self.training = TrainingController(self)
        self.models = ModelsController(self, classes=lambda: self.editing.classes.table.to_list())
        self.objects = ObjectsController(self)
        self.objects.class_id = lambda: self.editing.session.active_class
        self.objects.classes_offered.connect(self.editing.classes.adopt)
        self.review = ReviewController(self)  # after prediction: its finished slot has set doc.prediction
        # A model's class names and colours become the session's, so no predicted pixel is invisible.
        self.prediction.classes_offered.connect(self.editing.classes.adopt_from_model)
        # Recent files, projects and the last session; restores the size and panels once all are docked.
        self.session = SessionController(self)
        self.session.classes_offered.connect(self.editing.classes.adopt)

    # --- construction --------------------------------------------------------------------------
    def _connect_actions(self) -> None:
        a = self.actions
        a.close_image.triggered.connect(lambda: self.close_document(self.current))
        a.quit.triggered.connect(self.close)
        a.zoom_in.triggered.connect(self.canvas.zoom_in)
        a.zoom_out.triggered.connect(self.canvas.zoom_out)
        a.zoom_fit.triggered.connect(self.canvas.fit_to_window)
        a.zoom_actual.triggered.connect(self.canvas.zoom_actual_size)
        a.toggle_mask.toggled.connect(self.canvas.set_mask_visible)
        a.outline_mask.toggled.connect(self.canvas.overlay.set_outline_only)
        a.next_image.triggered.connect(lambda: self.step_document(+1))
        a.previous_image.triggered.connect(lambda: self.step_document(-1))
        a.shortcuts.triggered.connect(lambda: show_shortcuts(self))
        self.documents_changed.connect(self._update_enabled)  # Next/Previous Image as images open
        self.opening.slide_opened.connect(self._update_enabled)  # Save Project with a slide open
        a.about.triggered.connect(lambda: show_about(self))

    def add_panel(self, widget: QWidget, title: str, area=Qt.DockWidgetArea.RightDockWidgetArea) -> QDockWidget:
        """Dock a panel and list it under View > Panels."""
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock_{widget.objectName() or title}")
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        self.menus["panels"].addAction(dock.toggleViewAction())
        return dock

    def _show_placeholder(self) -> None:
        self.statusBar().showMessage("Open an image (Ctrl+O), drop files here, or try File > Open Sample.")

    # --- documents -----------------------------------------------------------------------------
    def open_paths(self, items: Iterable) -> list[ImageDocument]:
        """Open images (folders expanded) and show the first; bad files are reported, not fatal."""
        return self.opening.open_paths(items)

    def all_documents(self) -> list[ImageDocument]:
        """The open documents and the pages of their files that are not shown now (each keeps its work)."""
        return self.documents + self.opening.pages.documents()

    def set_current(self, doc: ImageDocument | None) -> None:
        if doc is self.current:
            return
        if self.current is not None:
            self.current.mask_changed.disconnect(self._refresh_overlay_region)
            self.current.mask_replaced.disconnect(self._refresh_overlay)
            self.current.classes_changed.disconnect(self._refresh_overlay)
            self.current.notice.disconnect(self._show_notice)
        self.current = doc
        if doc is None:
            self.canvas.set_image(None)
            self.setWindowTitle(APP_TITLE)
        else:
            self.canvas.set_image(doc.display_picture(), doc.model.pixel_size_um)
            self.canvas.set_mask(doc.mask, doc.classes.lut_rgba())
            doc.notice.connect(self._show_notice)
            doc.mask_changed.connect(self._refresh_overlay_region)
            doc.mask_replaced.connect(self._refresh_overlay)
            doc.classes_changed.connect(self._refresh_overlay)
            meta = doc.image.meta
            self.setWindowTitle(f"{doc.title}[*] — {APP_TITLE}")  # [*]: unsaved-work marker
            self.statusBar().showMessage(
                f"{doc.title}: {meta.width} x {meta.height}, {count(meta.channels, 'channel')}, "
                f"{meta.bit_depth}-bit {meta.dtype}"
                + (f", page {meta.page + 1} of {meta.pages}" if meta.pages > 1 else ""),
                8000,
            )
        self._update_enabled()
        self.document_changed.emit(doc)

    def step_document(self, step: int) -> None:
        if not self.documents:
            return
        index = self.documents.index(self.current) if self.current in self.documents else -1
        self.set_current(self.documents[(index + step) % len(self.documents)])

    def close_document(self, doc: ImageDocument | None) -> None:
        if doc is None or doc not in self.documents:
            return
        index = self.documents.index(doc)
        self.documents.remove(doc)
        if doc is self.current:
            remaining = self.documents[min(index, len(self.documents) - 1)] if self.documents else None
            self.set_current(remaining)
        self.documents_changed.emit()
        doc.deleteLater()

    def _refresh_overlay(self) -> None:
        if self.current is not None:
            self.canvas.set_mask(self.current.mask, self.current.classes.lut_rgba())
        self.status.refresh()

    def _show_notice(self, text: str) -> None:
        self.statusBar().showMessage(text, 15000)

    def _refresh_overlay_region(self, y0: int, x0: int, h: int, w: int) -> None:
        self.canvas.overlay.refresh(y0, x0, h, w)
        self.status.refresh()

    def _update_enabled(self) -> None:
        has = self.current is not None
        a = self.actions
        for action in (a.close_image, a.save_project, a.export_mask, a.zoom_in, a.zoom_out, a.zoom_fit,
                       a.zoom_actual, a.toggle_mask, a.outline_mask):
            action.setEnabled(has)
        a.save_project.setEnabled(has or bool(self.opening.slide_windows))  # a project may hold slides only
        a.channels.setEnabled(has and (self.current.image.meta.channels > 1 or self.current.image.meta.pages > 1))
        many = len(self.documents) > 1
        a.next_image.setEnabled(many)
        a.previous_image.setEnabled(many)

    # --- dialogs -------------------------------------------------------------------------------
    def show_error(self, title: str, text: str) -> None:
        """Tell the user what went wrong without blocking the event loop; the program keeps running."""
        self.last_error = text
        box = QMessageBox(QMessageBox.Icon.Warning, title, text, QMessageBox.StandardButton.Ok, self)
        box.setObjectName("errorDialog")
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()

    # --- drag and drop -------------------------------------------------------------------------
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        local = [url.toLocalFile() for url in event.mimeData().urls() if url.isLocalFile()]
        if local:
            event.acceptProposedAction()
            self.open_paths(local)

    def closeEvent(self, event: QCloseEvent) -> None:
        if not self.training.prepare_to_quit() or not self.editing.prepare_to_quit():
            event.ignore()
            return
        self.opening.cancel()  # an image still being read is not opened into a closing window
        self.session.save_on_quit()  # lists the slide windows still open, for the next start
        for slide_window in list(self.opening.slide_windows):
            slide_window.close()  # each saves its labels; none stays open without the window that made it
        self.model_host.shutdown()
        self.exporting.shutdown()
        self.objects.shutdown()
        self.training.shutdown()
        super().closeEvent(event)
