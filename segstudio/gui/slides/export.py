"""A slide window's Export menu: the labels as OME-Zarr (napari) or the objects as GeoJSON (QuPath).

The labels are saved first (what the window shows is what is written), then read back chunk by chunk from
their folder on a worker thread by core.objects.formats.slide_labels, so nothing slide-sized is held and
the window keeps painting; a progress dialog offers Cancel, and a cancelled export leaves no file.
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Qt, QThread, Signal
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QFileDialog, QProgressDialog

from segstudio.core.objects.formats import slide_labels

KINDS = {"omezarr": ("Labels as &OME-Zarr (napari)...", "OME-Zarr (*.ome.zarr)", ".ome.zarr", "Ctrl+Alt+E"),
         "geojson": ("Objects as &GeoJSON (QuPath)...", "GeoJSON (*.geojson)", ".geojson", "Ctrl+Alt+G")}


def class_names(classes) -> tuple[dict, dict]:
    """Label value -> class name and -> colour, background left out."""
    names = {c.id: c.name for c in classes if c.id}
    colours = {c.id: tuple(int(v) for v in c.color[:3]) for c in classes if c.id}
    return names, colours


class SlideExportThread(QThread):
    progress = Signal(int, int)
    done = Signal(object, object)  # target, a summary or None when cancelled
    failed = Signal(str)

    def __init__(self, kind: str, target: Path, doc, parent=None) -> None:
        super().__init__(parent)
        self.kind, self.target = kind, target
        slide, store = doc.slide, doc.store
        self.shape, self.dtype, self.folder = (slide.height, slide.width), store.dtype, store.folder
        self.mpp, self.name = slide.mpp, slide_labels.label_name(slide.path)
        self.names, self.colours = class_names(doc.classes)
        self.cancelled = False

    def run(self) -> None:
        from segstudio.core.label_store import LabelStore

        # A store of its own over the saved chunks: reading does not fill the window's store.
        labels = LabelStore(*self.shape, self.folder, dtype=self.dtype, pyramid=False)
        tell, stop = (lambda d, t: self.progress.emit(d, t)), (lambda: self.cancelled)
        try:
            if self.kind == "geojson":
                found = slide_labels.write_geojson(self.target, labels, self.names, self.colours, progress=tell,
                                                   cancel=stop)
                summary = f"{found} objects written to {self.target.name}"
            else:
                levels = slide_labels.write_omezarr(self.target, labels, self.names, self.colours,
                                                    pixel_size_um=self.mpp, name=self.name, progress=tell,
                                                    cancel=stop)
                summary = f"Labels written to {self.target.name} ({levels} levels; napari: labels/{self.name})"
        except slide_labels.ExportCancelled:
            self.done.emit(self.target, None)
        except (OSError, ValueError) as err:
            self.failed.emit(str(err))
        else:
            self.done.emit(self.target, summary)


class SlideExport(QObject):
    def __init__(self, window) -> None:
        super().__init__(window)
        self.window, self.doc = window, window.doc
        self.thread: SlideExportThread | None = None
        self.dialog: QProgressDialog | None = None
        menu = window.menuBar().addMenu("E&xport")
        self.actions = {}
        for kind, (text, _filter, _suffix, key) in KINDS.items():
            action = menu.addAction(text)
            action.setShortcut(QKeySequence(key))
            action.triggered.connect(lambda _=False, k=kind: self.export(k))
            self.actions[kind] = action

    def export(self, kind: str, target: Path | None = None) -> None:
        if self.thread is not None:
            return
        text, name_filter, suffix, _key = KINDS[kind]
        if target is None:
            suggestion = self.doc.path.with_name(slide_labels.label_name(self.doc.path) + suffix)
            chosen, _ = QFileDialog.getSaveFileName(self.window, text.replace("&", "").rstrip("."), str(suggestion),
                                                    name_filter)
            if not chosen:
                return
            target = Path(chosen)
        if not target.name.lower().endswith(suffix):
            target = target.with_name(target.name + suffix)
        self.doc.save_and_wait()  # the labels on disk are the ones in the window
        self.thread = SlideExportThread(kind, target, self.doc, self)
        self.dialog = QProgressDialog(f"Writing {target.name}...", "Cancel", 0, 0, self.window)
        self.dialog.setObjectName("slideExportProgress")
        self.dialog.setWindowModality(Qt.WindowModality.WindowModal)
        self.dialog.setMinimumDuration(300)
        self.dialog.canceled.connect(self._cancel)
        self.thread.progress.connect(self._progress)
        self.thread.done.connect(self._done)
        self.thread.failed.connect(self._failed)
        self.thread.start()

    def _progress(self, done: int, total: int) -> None:
        if self.dialog is not None:
            self.dialog.setMaximum(total)
            self.dialog.setValue(done)

    def _cancel(self) -> None:
        if self.thread is not None:
            self.thread.cancelled = True

    def _finish(self, text: str) -> None:
        if self.thread is not None:
            self.thread.wait()
            self.thread = None
        if self.dialog is not None:
            self.dialog.reset()
            self.dialog = None
        self.window.statusBar().showMessage(text, 15000)

    def _done(self, target, summary) -> None:
        self._finish(summary if summary else f"Export stopped: {target.name} was not written")

    def _failed(self, text: str) -> None:
        self._finish(f"Export failed: {text}")


def attach_slide_export(window) -> SlideExport:
    window.export = SlideExport(window)
    return window.export
