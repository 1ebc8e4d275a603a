"""The Qt face of one open slide: its labels (a core.label_store.LabelStore), an undo stack and autosave.

The labels live in the user data folder (autosave/slides/<key>.zarr) from the first stroke on: two
seconds after an edit the chunks it changed are written, each atomically, so a crash loses at most the
last couple of seconds, and reopening the slide shows the labels again.
"""
from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal

from segstudio.core import paths
from segstudio.core.autosave import AutosaveStore
from segstudio.core.imageio import Slide
from segstudio.core.label_store import ChunkDiff, LabelStore
from segstudio.core.labels import ClassTable
from segstudio.gui.documents.commands import BudgetedUndoStack, MaskEditCommand
from segstudio.gui.documents.document import UNDO_LIMIT, undo_budget_bytes

AUTOSAVE_DELAY_MS = 2000


def labels_folder(slide_path: Path) -> Path:
    return paths.autosave_dir() / "slides" / f"{AutosaveStore.key(slide_path)}.zarr"


class SlideDocument(QObject):
    labels_changed = Signal(int, int, int, int)  # y0, x0, h, w (level-0 pixels)
    saved = Signal(int, float)  # chunks written, seconds
    save_failed = Signal(str)

    def __init__(self, slide: Slide, classes: ClassTable | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.slide = slide
        self.classes = classes if classes is not None else ClassTable.default()
        folder = labels_folder(slide.path)
        self.model = LabelStore(slide.height, slide.width, folder, dtype=self.classes.mask_dtype)
        # Pixels painted by hand (1), which Predict leaves as they are; saved beside the labels.
        self.hand = LabelStore(slide.height, slide.width, folder.with_name(folder.stem + ".hand.zarr"),
                               pyramid=False)
        self.undo_stack = BudgetedUndoStack(undo_budget_bytes(), self)
        self.undo_stack.setUndoLimit(UNDO_LIMIT)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(AUTOSAVE_DELAY_MS)
        self._timer.timeout.connect(self.save_now)
        self.autosave_error: str | None = None

    @property
    def path(self) -> Path:
        return self.slide.path

    @property
    def title(self) -> str:
        return self.slide.path.name

    @property
    def store(self) -> LabelStore:
        return self.model

    def notify_region(self, y0: int, x0: int, h: int, w: int) -> None:
        """Labels changed in a box (painting, undo, redo): redraw it and save it soon."""
        self.labels_changed.emit(y0, x0, h, w)
        self._timer.start()

    def push_diff(self, diff: ChunkDiff, text: str) -> None:
        """One undo step for an edit already painted into the store."""
        self.undo_stack.push(MaskEditCommand(self, diff, text))
        self.mark_hand(diff)
        self._timer.start()

    def mark_hand(self, diff: ChunkDiff) -> None:
        """The pixels an edit changed are hand-painted from now on (undo leaves the mark)."""
        c = self.model.chunk
        for piece in diff.pieces:
            changed = piece.new != piece.old
            self.hand.put(piece.cy * c + piece.y0, piece.cx * c + piece.x0, changed.astype("uint8"), ~changed)

    def put_prediction(self, y0: int, x0: int, labels) -> None:
        """Predicted labels for a box, keeping the hand-painted pixels; redrawn and saved soon."""
        keep = self.hand.read(y0, x0, *labels.shape) != 0
        if self.model.put(y0, x0, labels.astype(self.model.dtype, copy=False), keep):
            self.notify_region(y0, x0, *labels.shape)

    def save_now(self) -> int:
        """Write the changed chunks now; returns how many. A failure is kept and told, never raised."""
        self._timer.stop()
        start = time.perf_counter()
        try:
            written = self.model.save()
            if self.hand.unsaved:
                self.hand.save()
        except OSError as err:
            self.autosave_error = f"{self.title}: the labels could not be saved ({err.strerror or err})"
            self.save_failed.emit(self.autosave_error)
            self._timer.start()
            return 0
        self.autosave_error = None
        self.undo_stack.setClean()
        self.saved.emit(written, time.perf_counter() - start)
        return written

    def close(self, close_slide: bool = True) -> None:
        if self.model.unsaved or self.hand.unsaved:
            self.save_now()
        if close_slide:
            self.slide.close()
