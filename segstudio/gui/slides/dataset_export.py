"""File > Export Reviewed Regions to Dataset in a slide's window: the regions a person painted or corrected,
as patches in a dataset folder (core.slide_dataset), written on a worker thread with progress and Cancel.

The patches are read one at a time while they are written, so an export holds one patch in memory
whatever the slide's size; the manifest is written once at the end (core.dataset.export_many), so a
cancelled or failed export leaves the dataset as it was or with the patches finished before.
"""
from __future__ import annotations

import threading
from pathlib import Path

from PySide6.QtCore import QObject, QThread, Signal
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QFileDialog, QMenu, QMessageBox

from segstudio.core.words import count
from segstudio.gui.progress import JobProgress


class _ExportThread(QThread):
    progress = Signal(int, int)
    done = Signal(object)  # (written entries, dataset size, cancelled) or an error message

    def __init__(self, doc, folder: Path, regions: list, parent=None) -> None:
        super().__init__(parent)
        self.doc, self.folder, self.regions = doc, folder, regions
        self.cancel_event = threading.Event()

    def run(self) -> None:
        from segstudio.core.dataset import export_many, load_manifest
        from segstudio.core.slide_dataset import slide_items

        total = len(self.regions)
        handed: list[int] = []

        def cancelled() -> bool:  # asked before each patch is read: the moment to show how far it got
            self.progress.emit(len(handed), total)
            handed.append(1)
            return self.cancel_event.is_set()

        try:
            doc = self.doc
            items = slide_items(doc.slide, doc.model, doc.hand, doc.classes, self.regions, cancelled=cancelled)
            written = export_many(self.folder, items, doc.classes)
            size = len(load_manifest(self.folder)["entries"]) if written else None
        except Exception as err:  # noqa: BLE001 - every failure reaches the user with the folder named
            self.done.emit(f"{type(err).__name__}: {err}" if not isinstance(err, (OSError, ValueError)) else str(err))
            return
        self.done.emit((written, size, self.cancel_event.is_set()))


class SlideDatasetExport(QObject):
    """The export action of one slide window."""

    finished = Signal(object)  # what _ExportThread.done carried

    def __init__(self, window) -> None:
        super().__init__(window)
        self.window = window
        self.thread: _ExportThread | None = None
        self.progress = JobProgress()
        self.progress.setObjectName("slideExportProgress")
        window.statusBar().addWidget(self.progress)
        self.progress.cancel_requested.connect(self.cancel)
        menu = _file_menu(window)
        self.action = menu.addAction("Export Reviewed Regions to &Dataset...")
        self.action.setObjectName("exportSlideRegions")
        self.action.setShortcut(QKeySequence("Ctrl+Shift+E"))  # as Export to Dataset in the main window
        self.action.setStatusTip("Write the parts of this slide painted or corrected by hand into a dataset "
                                 "folder, as patches with their labels, for fine-tuning")
        self.action.triggered.connect(lambda: self.export())

    def export(self, folder: str | Path | None = None) -> _ExportThread | None:
        """Ask for the dataset folder (unless given) and start writing the reviewed regions into it."""
        from segstudio.core.slide_dataset import reviewed_regions

        if self.thread is not None:
            return None
        doc = self.window.doc
        doc.wait_painted()  # strokes made at overview zoom are still being painted at full resolution
        regions = reviewed_regions(doc.hand)
        if not regions:
            QMessageBox.information(self.window, "Nothing to export",
                                    "No part of this slide was painted or corrected by hand yet. The dataset "
                                    "takes the regions a person reviewed, so paint or correct some first.")
            return None
        if folder is None:
            folder = QFileDialog.getExistingDirectory(self.window, "Export Reviewed Regions to Dataset")
            if not folder:
                return None
        self.thread = _ExportThread(doc, Path(folder), regions, self)
        self.thread.progress.connect(self.progress.update_progress)
        self.thread.done.connect(self._done)
        self.thread.finished.connect(self.thread.deleteLater)
        self.progress.start(f"Exporting {count(len(regions), 'region')} to {Path(folder).name}", len(regions))
        self.action.setEnabled(False)
        self.thread.start()
        return self.thread

    def cancel(self) -> None:
        if self.thread is not None:
            self.thread.cancel_event.set()

    def _done(self, outcome) -> None:
        folder = self.thread.folder
        self.thread.wait()
        self.thread = None
        self.progress.finish()
        self.action.setEnabled(True)
        if isinstance(outcome, str):
            QMessageBox.warning(self.window, "Export failed", f"Nothing was exported to {folder}.\n\n{outcome}")
        else:
            written, size, cancelled = outcome
            message = f"Exported {count(len(written), 'region')} of {self.window.doc.title} to {folder}"
            if size is not None:
                message += f"; the dataset now holds {count(size, 'image')}"
            self.window.statusBar().showMessage(("Export cancelled. " if cancelled else "") + message + ".", 10000)
        self.finished.emit(outcome)

    def shutdown(self) -> None:
        if self.thread is not None:
            self.cancel()
            self.thread.wait()


def _file_menu(window) -> QMenu:
    """The window's File menu, made first in the menu bar if it has none yet."""
    bar = window.menuBar()
    for action in bar.actions():
        if action.menu() is not None and action.text().replace("&", "") == "File":
            return action.menu()
    menu = QMenu("&File", bar)
    first = bar.actions()[0] if bar.actions() else None
    if first is None:
        bar.addMenu(menu)
    else:
        bar.insertMenu(first, menu)
    return menu
