"""The Qt face of one open slide: its labels (a core.label_store.LabelStore), an undo stack and autosave.

The labels live in the user data folder (autosave/slides/<key>.zarr) from the first stroke on: at most
two seconds after the first unsaved edit the changed chunks are written, each atomically, so a crash
loses at most the last couple of seconds, and reopening the slide shows the labels again.

At overview zoom a brush stroke or a polygon is painted twice: at once into the label level the screen
shows, and on a background thread (``jobs``, core.label_jobs) into every full-resolution pixel it covers.
Its undo step is made there at the stroke's end; undoing it waits for that painting, so undo is exact.
Once the queue runs dry the displayed levels are refreshed from the full-resolution pixels.

Saving has a thread of its own (``saver``) and does not wait for that painting: while a large stroke is
still being painted, the chunks it has moved on from (left alone for QUIET_S) are written every FLUSH_MS,
and the rest as soon as its painting ends, so what reaches disk keeps up with the painting.
"""
from __future__ import annotations

import shutil
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
# While full-resolution pixels are painted in the background (and once they are done), the chunks painted
# so far are written this often: a large stroke at overview takes seconds to paint.
FLUSH_MS = 500
# ...and of those, the chunks the painting has left alone this long (it has moved on: they are done), so
# that a chunk under the brush is not written again and again.
QUIET_S = 0.25


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
    painted = Signal(bool)  # the background painting queue ran dry; whether a stroke's last pixels were in it
    saved = Signal(int, float, int, bool)  # chunks written, seconds, the undo index saved, all painting in it
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
        # The labels saved earlier enter the label pyramid on a thread of their own (it reads each saved
        # chunk once): the slide opens at once, and labels show at low zoom as their part of it is built.
        self.model = LabelStore(slide.height, slide.width, folder, dtype=self.classes.mask_dtype,
                                build_pyramid=False)
        # Pixels painted by hand (1), which Predict leaves as they are; saved beside the labels.
        self.hand = LabelStore(slide.height, slide.width, folder.with_name(folder.stem + ".hand.zarr"),
                               pyramid=False)
        self.undo_stack = BudgetedUndoStack(undo_budget_bytes(), self)
        self.undo_stack.setUndoLimit(UNDO_LIMIT)
        self.autosave_timer = QTimer(self)  # the autosave cycle: armed by a change, fires save_now
        self.autosave_timer.setSingleShot(True)
        self.autosave_timer.timeout.connect(self.save_now)
        self.autosave_error: str | None = None
        self._relay = _Relay()
        self._relay.region.connect(self.labels_changed)
        # A stroke painted to its end is saved at once; a queue that ran dry mid-stroke, FLUSH_MS later.
        self._relay.painted.connect(lambda ended: self.save_now() if ended else self._arm(FLUSH_MS))
        self._relay.saved.connect(self._on_saved)
        self._relay.failed.connect(self._on_save_failed)
        self.last_written = 0
        self._preview_lock = threading.Lock()
        self._preview: list | None = None  # [level-0 box, finest previewed level] since the queue was last dry
        self._painting = 0  # full-resolution jobs queued and not yet done
        self.jobs = LabelJobs(on_idle=self._painted_all)  # full-resolution painting, in order
        self.saver = LabelJobs(name="label-save")  # writing changed chunks, beside the painting
        self._closed = False
        # What this colour slide feeds each one-channel model, as the user answered at its first Predict:
        # "he" (the hematoxylin stain) or "" (the grey mean). The inspector shows the maps of the same input.
        self.feeds: dict = {}
        self.pyramid_jobs = LabelJobs(name="label-pyramid")
        self.pyramid_jobs.submit(lambda: self.model.build_pyramid(
            built=lambda box: self._relay.region.emit(*box), stop=lambda: self._closed))
        self._strokes_ended = threading.Event()  # set by a stroke's undo step, taken by _painted_all

    @property
    def path(self) -> Path:
        return self.slide.path

    @property
    def title(self) -> str:
        return self.slide.path.name

    @property
    def closed(self) -> bool:
        return self._closed

    @staticmethod
    def feed_key(model) -> object:
        """The key of ``feeds`` for a model host selection (a library id, or a (model, metadata) pair)."""
        return model if isinstance(model, str) else id(model)

    @property
    def store(self) -> LabelStore:
        return self.model

    def notify_region(self, y0: int, x0: int, h: int, w: int) -> None:
        """Labels changed in a box (painting, undo, redo): redraw it and save it soon."""
        self.labels_changed.emit(y0, x0, h, w)
        self._arm()

    def _arm(self, ms: int = AUTOSAVE_DELAY_MS) -> None:
        """Make sure a save comes within ``ms``; a save already due sooner stays (edits never postpone it)."""
        timer = self.autosave_timer
        if not timer.isActive() or timer.remainingTime() > ms:
            timer.start(ms)

    def push_diff(self, diff: ChunkDiff, text: str) -> None:
        """One undo step for an edit already painted into the store."""
        self.undo_stack.push(MaskEditCommand(self, diff, text))
        self.mark_hand(diff)
        self._arm()

    def mark_hand(self, diff: ChunkDiff) -> None:
        """The pixels an edit changed are hand-painted from now on (undo leaves the mark)."""
        c = self.model.chunk
        for piece in diff.pieces:
            changed = piece.new != piece.old
            self.hand.put(piece.cy * c + piece.y0, piece.cx * c + piece.x0, changed.astype("uint8"), ~changed)

    def _mark_pixels(self, y0: int, x0: int, changed) -> None:
        """Pixels a stroke painted in the background just changed: hand-painted from now on, so they survive
        the next Predict and reach disk with the chunks that hold them."""
        if changed.any():
            self.hand.put(y0, x0, changed.astype("uint8"), ~changed)

    def put_prediction(self, y0: int, x0: int, labels) -> None:
        """Predicted labels for a box, keeping the hand-painted pixels; redrawn and saved soon."""
        keep = self.hand.read(y0, x0, *labels.shape) != 0
        if self.model.put(y0, x0, labels.astype(self.model.dtype, copy=False), keep):
            self.notify_region(y0, x0, *labels.shape)

    def label_folders(self) -> tuple[Path, Path]:
        """Where the labels and the hand map are saved (call save_and_wait first for all of them)."""
        return self.model.folder, self.hand.folder

    def bring_in(self, labels: Path, hand: Path, text: str) -> str | None:
        """Make the labels those saved in ``labels`` (a project's) as one undo step, so the work held before
        is one Undo away; the hand map becomes ``hand``'s. When that step would not fit the undo budget (a
        whole predicted slide), the labels held before are copied aside first; returns where, else None."""
        self.wait_painted()
        height, width = self.slide.height, self.slide.width
        other = LabelStore(height, width, labels, dtype=self.model.dtype, pyramid=False)
        self.hand.take_from(LabelStore(height, width, hand, pyramid=False))
        self._arm()
        keys = self.model.chunk_keys() | other.chunk_keys()
        if 2 * len(keys) * self.model.chunk ** 2 * self.model.dtype.itemsize <= self.undo_stack.budget_bytes:
            diff = self.model.diff_to(other)
            if diff.pieces:
                self.notify_region(*self.model.apply(diff))
                self.undo_stack.push(MaskEditCommand(self, diff, text))
            return None
        self.save_and_wait()
        kept = self.model.folder.with_name(f"{self.model.folder.stem}.before-{time.strftime('%Y%m%d-%H%M%S')}.zarr")
        shutil.copytree(self.model.folder, kept)
        self.model.take_from(other)
        self.undo_stack.clear()  # its steps were made on labels that are gone
        self.notify_region(0, 0, height, width)
        return str(kept)

    # --- background painting (overview strokes) -----------------------------------------------------------
    def paint_in_background(self, p0, p1, radius: float, value: int, record: dict, level: int) -> None:
        """Show a segment at once at ``level`` and up, and queue its full-resolution pixels."""
        box = self.store.preview_segment(p0, p1, radius, value, level)
        self._queue_painting(box, level, lambda: self.store.paint_segment_recorded(
            p0, p1, radius, value, record, pyramid_below=level, mark=self._mark_pixels))

    def fill_polygon_in_background(self, points: list[tuple[float, float]], value: int, level: int,
                                   text: str = "Polygon") -> None:
        """Show a filled polygon at once at ``level`` and up; its full-resolution pixels and its undo step
        are made in the background, as for a brush stroke at overview."""
        if len(points) < 3:
            return
        record: dict = {}
        box = self.store.preview_polygon(points, value, level)
        self._queue_painting(box, level, lambda: self.store.paint_polygon_recorded(
            points, value, record, pyramid_below=level, mark=self._mark_pixels))
        self.push_stroke(record, text)

    def paint_shape_in_background(self, box, draw, value: int, level: int, shape_at, text: str) -> None:
        """Any shape (a fill's region): ``shape_at(ds)`` shown at once at ``level`` and up (LabelStore.preview),
        ``draw`` over the level-0 ``box`` painted at full resolution in the background, one undo step."""
        record: dict = {}
        shown = self.store.preview(shape_at, value, level)
        self._queue_painting(shown, level, lambda: self.store.paint(
            box, draw, value, record=record, pyramid_below=level, mark=self._mark_pixels))
        self.push_stroke(record, text)

    def _queue_painting(self, box, level: int, paint_full) -> None:
        with self._preview_lock:
            if self._preview is None:
                self._preview = [box, level]
            else:
                self._preview = [_union(self._preview[0], box), min(self._preview[1], level)]
            self._painting += 1
        self.notify_region(*box)

        def paint() -> None:
            try:
                paint_full()
            finally:
                with self._preview_lock:
                    self._painting -= 1

        self.jobs.submit(paint)

    def push_stroke(self, record: dict, text: str) -> None:
        """The undo step of a stroke painted in the background, made once its painting is done."""
        pending = _PendingDiff()

        def make_step() -> None:  # on the background thread, once the stroke's pixels are all painted
            pending.set(self.store.diff_since(record))  # (its hand pixels were marked as it was painted)
            self._strokes_ended.set()

        self.jobs.submit(make_step)
        self.undo_stack.push(SlideStrokeCommand(self, pending, text))
        self._arm()

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
        ended = self._strokes_ended.is_set()
        self._strokes_ended.clear()
        self._relay.painted.emit(ended)  # what was painted reaches disk soon, not a full autosave delay later

    def save_now(self) -> None:
        """Queue a save of the changed chunks on the saving thread; the GUI thread only queues.

        It does not wait for painting under way in the background: it takes the chunks as they are when it
        begins (painting meanwhile copies a chunk before changing it) and writes each atomically; while
        that painting goes on, the next save comes FLUSH_MS later. ``saved`` or ``save_failed`` tells.
        """
        self.autosave_timer.stop()
        if self._closed:
            return
        index, start = self.undo_stack.index(), time.perf_counter()

        def save() -> None:
            complete = not self.jobs.busy  # no stroke is still being painted: this save holds them all
            quiet = None if complete else QUIET_S
            try:
                written = self.model.write(self.model.snapshot(quiet=quiet))
                if self.hand.unsaved:
                    self.hand.write(self.hand.snapshot(quiet=quiet))
            except OSError as err:
                self._relay.failed.emit(f"{self.title}: the labels could not be saved ({err.strerror or err})")
                return
            self.last_written = written
            self._relay.saved.emit(written, time.perf_counter() - start, index, complete)

        self.saver.submit(save)

    def save_and_wait(self) -> int:
        """Wait for the painting under way, save, and wait until it is on disk; returns the chunks written."""
        if self._closed:
            return 0
        self.jobs.wait()  # every stroke made so far is in this save
        self.last_written = 0
        self.save_now()
        self.saver.wait()
        return self.last_written

    def _on_saved(self, written: int, seconds: float, index: int, complete: bool) -> None:
        self.autosave_error = None
        if not complete:
            self._arm(FLUSH_MS)  # painting went on meanwhile: its chunks follow soon
        elif self.undo_stack.index() == index:  # nothing was done since the save began
            self.undo_stack.setClean()
        self.saved.emit(written, seconds)

    def _on_save_failed(self, text: str) -> None:
        self.autosave_error = text
        self.save_failed.emit(text)
        self._arm()

    def close(self, close_slide: bool = True) -> None:
        if self._closed:
            return
        if self.model.unsaved or self.hand.unsaved or self.jobs.busy:
            self.save_and_wait()
        self._closed = True
        self.autosave_timer.stop()
        self.pyramid_jobs.close()
        self.jobs.close()
        self.saver.close()
        if close_slide:
            self.slide.close()


def _union(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    y0, x0 = min(a[0], b[0]), min(a[1], b[1])
    return y0, x0, max(a[0] + a[2], b[0] + b[2]) - y0, max(a[1] + a[3], b[1] + b[3]) - x0
