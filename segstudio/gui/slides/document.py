"""The Qt face of one open slide: its labels (a core.label_store.LabelStore), an undo stack and autosave.

The labels live in the user data folder (autosave/slides/<key>.zarr) from the first stroke on: two
seconds after an edit the chunks it changed are written, each atomically, so a crash loses at most the
last couple of seconds, and reopening the slide shows the labels again.

At overview zoom a brush stroke is painted twice: at once into the label level the screen shows, and on
a background thread (core.label_jobs) into every full-resolution pixel it covers. Its undo step is made
there at the stroke's end; undoing it waits for that painting, so undo is exact. Once the queue runs
dry the displayed levels are refreshed from the full-resolution pixels.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtGui import QUndoCommand

from segstudio.core.imageio import Slide
from segstudio.core.label_jobs import LabelJobs
from segstudio.core.label_store import ChunkDiff, LabelStore
from segstudio.core.labels import ClassTable
from segstudio.core.slide_dataset import autosaved_labels_folder
from segstudio.gui.documents.commands import BudgetedUndoStack, MaskEditCommand
from segstudio.gui.documents.document import UNDO_LIMIT, undo_budget_bytes

AUTOSAVE_DELAY_MS = 2000


def labels_folder(slide_path: Path) -> Path:
    return autosaved_labels_folder(slide_path)


class _PendingDiff:
    def __init__(self) -> None:
        self.diff: ChunkDiff | None = None
        self.done = threading.Event()

    def set(self, diff: ChunkDiff) -> None:
        self.diff = diff
        self.done.set()


class SlideStrokeCommand(MaskEditCommand):
    """A stroke whose full-resolution pixels (and so its diff) are still being painted in the background."""

    def __init__(self, doc, pending: _PendingDiff, text: str) -> None:
        QUndoCommand.__init__(self, text)
        self.doc, self._pending = doc, pending
        self._applied, self.silent = True, False

    @property
    def diff(self) -> ChunkDiff:
        if not self._pending.done.is_set():
            self.doc.jobs.wait()  # its painting, and the step made from it, are still queued
        return self._pending.diff

    @property
    def nbytes(self) -> int:
        return self._pending.diff.nbytes if self._pending.done.is_set() else 0


class _Relay(QObject):
    """Carries what the background thread finished to the GUI thread (queued signals)."""

    region = Signal(int, int, int, int)
    saved = Signal(int, float, int)  # chunks written, seconds, the undo index saved
    failed = Signal(str)


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
        self._relay = _Relay()
        self._relay.region.connect(self.labels_changed)
        self._relay.saved.connect(self._on_saved)
        self._relay.failed.connect(self._on_save_failed)
        self.last_written = 0
        self._preview_lock = threading.Lock()
        self._preview: list | None = None  # [level-0 box, finest previewed level] since the queue was last dry
        self._painting = 0  # full-resolution jobs queued and not yet done
        self.jobs = LabelJobs(on_idle=self._painted_all)

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

    # --- background painting (overview strokes) -----------------------------------------------------------
    def paint_in_background(self, p0, p1, radius: float, value: int, record: dict, level: int) -> None:
        """Show a segment at once at ``level`` and up, and queue its full-resolution pixels."""
        box = self.store.preview_segment(p0, p1, radius, value, level)
        with self._preview_lock:
            if self._preview is None:
                self._preview = [box, level]
            else:
                self._preview = [_union(self._preview[0], box), min(self._preview[1], level)]
            self._painting += 1
        self.labels_changed.emit(*box)

        def paint() -> None:
            try:
                self.store.paint_segment_recorded(p0, p1, radius, value, record, pyramid_below=level)
            finally:
                with self._preview_lock:
                    self._painting -= 1

        self.jobs.submit(paint)

    def push_stroke(self, record: dict, text: str) -> None:
        """The undo step of a stroke painted in the background, made once its painting is done."""
        pending = _PendingDiff()

        def make_step() -> None:  # on the background thread, once the stroke's pixels are all painted
            diff = self.store.diff_since(record)
            self.mark_hand(diff)  # what a person painted survives the next Predict
            pending.set(diff)

        self.jobs.submit(make_step)
        self.undo_stack.push(SlideStrokeCommand(self, pending, text))
        self._timer.start()

    def wait_painted(self) -> None:
        """Wait for the full-resolution painting queued so far (before undo, or painting at full resolution)."""
        with self._preview_lock:
            painting = self._painting or self._preview is not None  # painting, or its levels not yet refreshed
        if painting:
            self.jobs.wait()

    def _painted_all(self) -> None:
        """On the background thread, with the queue dry: the previewed levels from the full-resolution pixels."""
        with self._preview_lock:
            preview = self._preview
        if preview is not None:
            self.store.refresh_pyramid(preview[0], from_level=preview[1])
            with self._preview_lock:
                if self._preview is preview:  # nothing previewed meanwhile (that is refreshed next time)
                    self._preview = None
            self._relay.region.emit(*preview[0])

    def save_now(self) -> None:
        """Queue a save of the changed chunks behind the painting queued before it; the GUI thread only queues.

        The background thread takes the chunks as they are when its turn comes (strokes painted meanwhile
        copy a chunk before changing it) and writes each atomically. ``saved`` or ``save_failed`` tells.
        """
        self._timer.stop()
        index, start = self.undo_stack.index(), time.perf_counter()

        def save() -> None:
            try:
                self.last_written = self.model.write(self.model.snapshot())
                if self.hand.unsaved:
                    self.hand.write(self.hand.snapshot())
            except OSError as err:
                self._relay.failed.emit(f"{self.title}: the labels could not be saved ({err.strerror or err})")
                return
            self._relay.saved.emit(self.last_written, time.perf_counter() - start, index)

        self.jobs.submit(save)

    def save_and_wait(self) -> int:
        """Save now and wait until it is on disk; returns how many chunks were written."""
        self.last_written = 0
        self.save_now()
        self.jobs.wait()
        return self.last_written

    def _on_saved(self, written: int, seconds: float, index: int) -> None:
        self.autosave_error = None
        if self.undo_stack.index() == index:  # nothing was done since the save began
            self.undo_stack.setClean()
        self.saved.emit(written, seconds)

    def _on_save_failed(self, text: str) -> None:
        self.autosave_error = text
        self.save_failed.emit(text)
        self._timer.start()

    def close(self, close_slide: bool = True) -> None:
        if self.model.unsaved or self.hand.unsaved or self.jobs.busy:
            self.save_and_wait()
        self.jobs.close()
        if close_slide:
            self.slide.close()


def _union(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    y0, x0 = min(a[0], b[0]), min(a[1], b[1])
    return y0, x0, max(a[0] + a[2], b[0] + b[2]) - y0, max(a[1] + a[3], b[1] + b[3]) - x0
