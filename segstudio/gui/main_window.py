"""The main window: menus, the canvas, the status bar and the docks.

It holds the list of open documents and forwards user intent; the pixels, labels and models live in
core/engine and in ImageDocument. Docks are separate widgets in gui/panels.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

from PySide6.QtCore import QSettings, Qt, Signal
from PySide6.QtGui import QCloseEvent, QDragEnterEvent, QDropEvent, QKeySequence
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QWidget,
)

from segstudio import __version__
from segstudio.core import paths
from segstudio.core.images import SUPPORTED_SUFFIXES, ImageReadError, read_image
from segstudio.gui.actions import Actions, build_menus, create_actions
from segstudio.gui.canvas.view import ImageCanvas
from segstudio.gui.document import ImageDocument
from segstudio.gui.editing import EditingController
from segstudio.gui.exporting import ExportController
from segstudio.gui.inspector import InspectorController
from segstudio.gui.prediction import PredictionController
from segstudio.gui.training.controller import TrainingController

APP_TITLE = "segstudio"


def expand_image_paths(items: Iterable[str | Path]) -> list[Path]:
    """Files as given, folders expanded to the supported images inside them (sorted, not recursive)."""
    out: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            out.extend(sorted(p for p in path.iterdir() if p.suffix.lower() in SUPPORTED_SUFFIXES and p.is_file()))
        else:
            out.append(path)
    return out


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
        self._build_status_bar()
        self._populate_samples_menu()
        self._connect_actions()
        self._show_placeholder()
        self.device_label.setText("Device: automatic")
        # Each feature lives in its own controller, which adds its dock, actions and shortcuts.
        self.prediction = PredictionController(self)
        self.editing = EditingController(self)
        self.inspector = InspectorController(self)
        self.exporting = ExportController(self)
        self.training = TrainingController(self)

    # --- construction --------------------------------------------------------------------------
    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.position_label = QLabel("")
        self.position_label.setObjectName("positionLabel")
        self.position_label.setMinimumWidth(260)
        self.zoom_label = QLabel("")
        self.zoom_label.setObjectName("zoomLabel")
        self.device_label = QLabel("")
        self.device_label.setObjectName("deviceLabel")
        bar.addPermanentWidget(self.position_label)
        bar.addPermanentWidget(self.zoom_label)
        bar.addPermanentWidget(self.device_label)
        self.canvas.cursor_moved.connect(self._show_cursor_info)
        self.canvas.zoom_changed.connect(lambda z: self.zoom_label.setText(f"{z * 100:.0f}%"))

    def _populate_samples_menu(self) -> None:
        menu = self.menus["samples"]
        menu.clear()
        samples = sorted(p for p in paths.samples_dir().glob("*") if p.suffix.lower() in SUPPORTED_SUFFIXES)
        for sample in samples:
            action = menu.addAction(sample.name)
            action.triggered.connect(lambda _=False, p=sample: self.open_paths([p]))
        if not samples:
            empty = menu.addAction("(no sample images installed)")
            empty.setEnabled(False)

    def _connect_actions(self) -> None:
        a = self.actions
        a.open.triggered.connect(self.choose_files)
        a.open_folder.triggered.connect(self.choose_folder)
        a.close_image.triggered.connect(lambda: self.close_document(self.current))
        a.quit.triggered.connect(self.close)
        a.zoom_in.triggered.connect(self.canvas.zoom_in)
        a.zoom_out.triggered.connect(self.canvas.zoom_out)
        a.zoom_fit.triggered.connect(self.canvas.fit_to_window)
        a.zoom_actual.triggered.connect(self.canvas.zoom_actual_size)
        a.toggle_mask.toggled.connect(self.canvas.set_mask_visible)
        a.outline_mask.toggled.connect(self.canvas.overlay.set_outline_only)
        a.channels.triggered.connect(self.choose_channels)
        a.export_mask.triggered.connect(self.export_mask)
        a.next_image.triggered.connect(lambda: self.step_document(+1))
        a.previous_image.triggered.connect(lambda: self.step_document(-1))
        a.shortcuts.triggered.connect(self.show_shortcuts)
        a.about.triggered.connect(self.show_about)

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

    # --- opening -------------------------------------------------------------------------------
    def choose_files(self) -> None:
        settings = QSettings()
        start = settings.value("last_folder", str(Path.home()))
        patterns = " ".join(f"*{s}" for s in SUPPORTED_SUFFIXES)
        files, _ = QFileDialog.getOpenFileNames(self, "Open Images", start, f"Images ({patterns});;All files (*)")
        if files:
            settings.setValue("last_folder", str(Path(files[0]).parent))
            self.open_paths(files)

    def choose_folder(self) -> None:
        settings = QSettings()
        folder = QFileDialog.getExistingDirectory(self, "Open Folder", settings.value("last_folder", str(Path.home())))
        if folder:
            settings.setValue("last_folder", folder)
            self.open_paths([folder])

    def open_paths(self, items: Iterable[str | Path]) -> list[ImageDocument]:
        """Open images (folders expanded); show the first that opened. Bad files are reported, not fatal."""
        opened: list[ImageDocument] = []
        errors: list[str] = []
        for path in expand_image_paths(items):
            existing = self.find_document(path)
            if existing is not None:
                opened.append(existing)
                continue
            try:
                doc = self._load_document(path)
            except ImageReadError as err:
                errors.append(str(err))
                continue
            self.documents.append(doc)
            opened.append(doc)
        if opened:
            self.documents_changed.emit()
            self.set_current(opened[0])
        if errors:
            self.show_error("Some files could not be opened" if len(errors) > 1 else "Cannot open image", "\n".join(errors))
        return opened

    def _load_document(self, path: Path) -> ImageDocument:
        self.setCursor(Qt.CursorShape.WaitCursor)
        try:
            image = read_image(path)
        finally:
            self.unsetCursor()
        return ImageDocument(image, parent=self)

    def find_document(self, path: str | Path) -> ImageDocument | None:
        target = Path(path).resolve()
        return next((d for d in self.documents if d.path.resolve() == target), None)

    def set_current(self, doc: ImageDocument | None) -> None:
        if doc is self.current:
            return
        if self.current is not None:
            self.current.mask_changed.disconnect(self._refresh_overlay_region)
            self.current.mask_replaced.disconnect(self._refresh_overlay)
            self.current.classes_changed.disconnect(self._refresh_overlay)
        self.current = doc
        if doc is None:
            self.canvas.set_image(None)
            self.setWindowTitle(APP_TITLE)
        else:
            self.canvas.set_image(doc.display_rgb())
            self.canvas.set_mask(doc.mask, doc.classes.lut_rgba())
            doc.mask_changed.connect(self._refresh_overlay_region)
            doc.mask_replaced.connect(self._refresh_overlay)
            doc.classes_changed.connect(self._refresh_overlay)
            meta = doc.image.meta
            self.setWindowTitle(f"{doc.title}[*] — {APP_TITLE}")  # [*]: unsaved-work marker
            self.statusBar().showMessage(
                f"{meta.path.name}: {meta.width} x {meta.height}, {meta.channels} channel(s), "
                f"{meta.bit_depth}-bit {meta.dtype}" + (f", page {meta.page + 1} of {meta.pages}" if meta.pages > 1 else ""),
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

    def _refresh_overlay_region(self, y0: int, x0: int, h: int, w: int) -> None:
        self.canvas.overlay.refresh(y0, x0, h, w)

    def _update_enabled(self) -> None:
        has = self.current is not None
        a = self.actions
        for action in (a.close_image, a.export_mask, a.zoom_in, a.zoom_out, a.zoom_fit, a.zoom_actual, a.toggle_mask, a.outline_mask):
            action.setEnabled(has)
        a.channels.setEnabled(has and (self.current.image.meta.channels > 1 or self.current.image.meta.pages > 1))
        many = len(self.documents) > 1
        a.next_image.setEnabled(many)
        a.previous_image.setEnabled(many)

    def export_mask(self, path: str | Path | None = None) -> Path | None:
        """Save the current mask as an index PNG (pixel value = class id) where the user chooses."""
        from segstudio.core.storage import save_mask_png

        doc = self.current
        if doc is None:
            return None
        if path is None:
            suggestion = str(doc.path.with_name(f"{doc.path.stem}_mask.png"))
            path, _ = QFileDialog.getSaveFileName(self, "Export Mask", suggestion, "Index mask PNG (*.png)")
            if not path:
                return None
        target = Path(path)
        if target.suffix.lower() != ".png":
            target = target.with_suffix(".png")
        if target.resolve() == doc.path.resolve():
            self.show_error("Mask not saved", f"{target} is the image itself; choose another name.")
            return None
        try:
            save_mask_png(target, doc.mask)
        except (OSError, ValueError) as err:
            self.show_error("Mask not saved", str(err))
            return None
        self.statusBar().showMessage(f"Mask saved to {target} (pixel values are class ids)", 8000)
        return target

    # --- status bar ----------------------------------------------------------------------------
    def _show_cursor_info(self, x: int, y: int) -> None:
        doc = self.current
        if doc is None or x < 0:
            self.position_label.setText("")
            return
        value = doc.image.pixels[y, x]
        shown = str(value[0].item()) if value.shape[0] == 1 else "(" + ", ".join(str(v.item()) for v in value) + ")"
        if doc.image.pixels.dtype.kind == "f":
            shown = f"{value[0]:.4g}" if value.shape[0] == 1 else "(" + ", ".join(f"{v:.4g}" for v in value) + ")"
        label_id = int(doc.mask[y, x])
        cls = doc.classes.get(label_id) if label_id in doc.classes.ids() else None
        label = cls.name if cls is not None else str(label_id)
        self.position_label.setText(f"x {x}  y {y}   value {shown}   label {label}")

    # --- dialogs -------------------------------------------------------------------------------
    def show_error(self, title: str, text: str) -> None:
        """Tell the user what went wrong without blocking the event loop; the program keeps running."""
        self.last_error = text
        box = QMessageBox(QMessageBox.Icon.Warning, title, text, QMessageBox.StandardButton.Ok, self)
        box.setObjectName("errorDialog")
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()

    def choose_channels(self) -> None:
        from segstudio.gui.dialogs.channels import ChannelsDialog

        doc = self.current
        if doc is None:
            return
        dialog = ChannelsDialog(doc, self)
        if dialog.exec():
            page, channels = dialog.selection()
            if page != doc.image.meta.page:
                try:
                    image = read_image(doc.path, page=page)
                except ImageReadError as err:
                    self.show_error("Cannot open image", str(err))
                    return
                replacement = ImageDocument(image, classes=doc.classes, parent=self)
                self.documents[self.documents.index(doc)] = replacement
                self.current = None
                self.set_current(replacement)
                doc = replacement
            doc.set_display_channels(channels)
            self.canvas.set_image(doc.display_rgb())
            self.canvas.set_mask(doc.mask, doc.classes.lut_rgba())

    def show_shortcuts(self) -> None:
        rows = []
        for action in self.actions.all():
            keys = ", ".join(s.toString(QKeySequence.SequenceFormat.NativeText) for s in action.shortcuts())
            if keys:
                rows.append(f"<tr><td>{action.text().replace('&', '')}</td><td><b>{keys}</b></td></tr>")
        rows.append("<tr><td>Pan</td><td><b>Middle drag, Space + drag</b></td></tr>")
        rows.append("<tr><td>Zoom</td><td><b>Mouse wheel</b></td></tr>")
        box = QMessageBox(QMessageBox.Icon.NoIcon, "Keyboard Shortcuts", "<table>" + "".join(rows) + "</table>",
                          QMessageBox.StandardButton.Close, self)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()

    def show_about(self) -> None:
        QMessageBox.about(
            self,
            "About segstudio",
            f"<b>segstudio {__version__}</b><p>Label biomedical slides with a segmentation network in the loop.</p>",
        )

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
        QSettings().setValue("window/geometry", self.saveGeometry())
        QSettings().setValue("window/state", self.saveState())
        self.prediction.shutdown()
        self.exporting.shutdown()
        self.training.shutdown()
        super().closeEvent(event)
