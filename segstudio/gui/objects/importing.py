"""File > Import Objects: objects from QuPath, Fiji or another tool painted into the current mask as one
undoable step (marked as painted by hand, so Predict keeps them).

The file is read and its objects painted in a worker thread (a QuPath export of a whole slide holds
hundreds of thousands of polygons), with progress and Cancel in the status bar; the undo step is made on
the GUI thread once the reading is done. A file that cannot be used is named with the reason.
"""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, QThread, Signal

from segstudio.core.objects.editing import ObjectDiff
from segstudio.core.objects.formats import ObjectFileError, ObjectsCancelled, layer_to_mask, read_objects
from segstudio.core.text import printable
from segstudio.gui.progress import JobProgress


class _ReadThread(QThread):
    """Reads one file of objects for an image of ``shape`` and makes its class mask."""

    progress = Signal(int, int)
    done = Signal(object, object)  # (layer, mask, classes) or None, error text or None (None, None: cancelled)

    def __init__(self, path: Path, shape: tuple[int, int], classes, parent=None) -> None:
        super().__init__(parent)
        self.path, self.shape, self.classes = path, shape, classes
        self.stop = threading.Event()

    def run(self) -> None:
        name = printable(self.path.name)
        try:
            layer = read_objects(self.path, shape=self.shape, progress=self.progress.emit,
                                 cancelled=self.stop.is_set)
            if layer.ids.shape != self.shape:
                raise ObjectFileError(self.path, f"its objects cover {layer.ids.shape[1]} x {layer.ids.shape[0]} "
                                                 f"pixels; the image is {self.shape[1]} x {self.shape[0]}")
            mask, classes = layer_to_mask(layer, self.classes)
        except ObjectsCancelled:
            self.done.emit(None, None)
        except (ObjectFileError, OSError) as err:
            self.done.emit(None, str(err))
        except (ValueError, MemoryError) as err:
            self.done.emit(None, f"{name}: cannot be imported ({type(err).__name__}: {err})")
        else:
            self.done.emit((layer, mask, classes), None)


class ObjectImporter(QObject):
    """One import at a time for the window; ``controller`` is the objects controller (its window, its signal)."""

    def __init__(self, controller) -> None:
        super().__init__(controller)
        self.controller = controller
        self.window = controller.window
        self.thread: _ReadThread | None = None
        self._target = None  # the document the objects go into
        self.progress = JobProgress()
        self.progress.setObjectName("importObjectsProgress")
        self.progress.cancel_button.setToolTip("Stop importing; the image is left as it was")
        self.window.statusBar().addWidget(self.progress)
        self.progress.cancel_requested.connect(self.cancel)

    def busy(self) -> bool:
        return self.thread is not None

    def start(self, doc, path: Path) -> bool:
        if self.busy():
            self.window.statusBar().showMessage("Objects are being imported already; wait or cancel first.", 5000)
            return False
        self._target = doc
        self.thread = _ReadThread(Path(path), tuple(doc.mask.shape), doc.classes.copy(), self)
        self.thread.progress.connect(self.progress.update_progress)
        self.thread.done.connect(self._done)
        self.window.statusBar().clearMessage()  # a message shown over the progress would hide its title
        self.progress.start(f"Importing objects from {printable(Path(path).name)}", 0)
        self.thread.start()
        return True

    def cancel(self) -> None:
        if self.thread is not None:
            self.thread.stop.set()

    def wait(self) -> None:
        """Block until a running import has delivered (for scripts and tests)."""
        from PySide6.QtCore import QCoreApplication

        while self.thread is not None:
            self.thread.wait()
            QCoreApplication.processEvents()

    def _done(self, result, error) -> None:
        thread, doc = self.thread, self._target
        self.thread, self._target = None, None
        thread.wait()
        thread.deleteLater()
        self.progress.finish()
        name = printable(thread.path.name)
        if error is not None:
            self.window.show_error("Objects not imported", error)
        elif result is None:
            self.window.statusBar().showMessage(f"Import of {name} cancelled; the image is as it was.", 8000)
        elif doc not in self.window.all_documents():
            self.window.statusBar().showMessage(f"{doc.title} was closed; the objects of {name} were not added.",
                                                8000)
        else:
            apply_objects(self.controller, doc, thread.path, *result)


def apply_objects(controller, doc, path: Path, layer, mask: np.ndarray, classes) -> bool:
    """Paint the objects read from ``path`` into ``doc`` as one undo step."""
    name = printable(path.name)
    if classes != doc.classes:
        controller.classes_offered.emit(classes)
    inside = layer.ids > 0
    rows, cols = np.flatnonzero(inside.any(axis=1)), np.flatnonzero(inside.any(axis=0))
    if rows.size == 0:
        controller.window.statusBar().showMessage(f"{name} holds no objects with an area.", 8000)
        return False
    box = slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1)
    here = inside[box]
    new_mask = np.where(here, mask[box], doc.mask[box]).astype(doc.mask.dtype)
    ids_old = ids_new = None
    if doc.model.objects is not None:
        ids_old = doc.model.objects[box].copy()
        offset = int(doc.model.objects.max())
        ids_new = np.where(here, layer.ids[box].astype(np.int64) + offset, ids_old).astype(np.uint32)
    diff = ObjectDiff(box[0].start, box[1].start, doc.mask[box].copy(), new_mask, doc.hand[box].copy(),
                      doc.hand[box] | here, ids_old, ids_new)
    doc.push_diff(diff, f"Import Objects from {name}")
    count = len(np.unique(layer.ids[box][here]))
    skipped = getattr(layer, "skipped", 0)
    note = f" ({skipped} without an area skipped)" if skipped else ""
    controller.window.statusBar().showMessage(f"{count} objects imported from {name}{note}", 8000)
    return True
