"""Autosave and crash recovery for the open images.

Each image's mask, hand-painted map and the class table are written atomically to the user data folder
(core.autosave.AutosaveStore, never next to the source image) a moment after the last edit, when the
user switches image or closes it, and on quit. The undo stack's clean state means "the autosave holds
exactly this", so the window title's star and the image list's "unsaved" go away once the work is
safely stored, and stay when a save fails.

Saves made while the user works run on one background thread with a snapshot of the arrays, so a
large slide does not freeze the brush; the save on quit runs in the foreground and is waited for.

An image page open in another window (of this or another segstudio) opens here read-only: its lock in
the store is held by the other window, whose saves would otherwise overwrite the strokes made here (or
these theirs). The user is told; the first edit tried once the other window has let go takes the image
over, with the other window's last work loaded first.
"""
from __future__ import annotations

import html
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import shiboken6
from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import QMessageBox

from segstudio.core import paths
from segstudio.core.autosave import AutosaveStore
from segstudio.core.document import ImageStatus
from segstudio.core.text import printable
from segstudio.core.words import count
from segstudio.gui.documents.document import ImageDocument

DEFAULT_DELAY_MS = 2000


@dataclass
class _SaveJob:
    doc: ImageDocument
    title: str
    path: Path
    mask: np.ndarray
    hand: np.ndarray
    classes: object
    extra: dict
    token: tuple
    objects: np.ndarray | None = None
    error: str | None = None
    handled: bool = False
    done: threading.Event = field(default_factory=threading.Event)


def _html_name(name) -> str:
    return html.escape(printable(name))


def _compact(ids: np.ndarray | None) -> np.ndarray | None:
    """A copy of the instance map for saving: two bytes a pixel while the ids fit (they mostly do)."""
    if ids is None:
        return None
    return ids.astype(np.uint16) if int(ids.max(initial=0)) < 2**16 else ids.copy()


def _describe_time(saved_at) -> str:
    try:
        return saved_at.astimezone().strftime("%Y-%m-%d %H:%M")
    except (AttributeError, ValueError, OSError):
        return str(saved_at) if saved_at else "earlier"


class AutosaveController(QObject):
    saved = Signal(object)  # ImageDocument whose work is now in the autosave
    failed = Signal(object, str)  # ImageDocument, why
    _job_done = Signal(object)  # emitted on the worker thread, delivered on the GUI thread

    def __init__(self, window, classes, *, busy: Callable[[], bool] = lambda: False,
                 store: AutosaveStore | None = None, delay_ms: int = DEFAULT_DELAY_MS) -> None:
        super().__init__(window)
        self.window = window
        self.classes = classes
        self.busy = busy
        self.store = store if store is not None else AutosaveStore()
        self.timer = QTimer(self)
        self.timer.setSingleShot(True)
        self.timer.setInterval(delay_ms)
        self.timer.timeout.connect(self.save_pending)
        self._pending: set[ImageDocument] = set()
        self._forced: set[ImageDocument] = set()
        self._jobs: dict[Future, _SaveJob] = {}
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="autosave")
        self._claim: set[Path] = set()  # crashed-session work to re-save under this session once restored
        # Documents already restored and watched: a page shown again must not be overwritten by its own
        # (possibly older, still being written) autosave, nor connected twice.
        self._known: weakref.WeakSet[ImageDocument] = weakref.WeakSet()
        self._closed = False
        self._quitting = False  # the quit dialog reports failures; no separate box per image then
        self.recovery_box: QMessageBox | None = None
        self._held: dict[tuple[Path, int], ImageDocument] = {}  # image pages whose lock this window holds
        self.unavailable: str | None = None  # why the autosave folder cannot be used (told once)
        self._job_done.connect(self._finish)

    @property
    def delay_ms(self) -> int:
        return self.timer.interval()

    @delay_ms.setter
    def delay_ms(self, value: int) -> None:
        self.timer.setInterval(int(value))

    # --- session -------------------------------------------------------------------------------
    def start(self) -> None:
        """Begin this session and offer to recover what a session that crashed left behind."""
        try:
            found = self.store.recoverable()
        except OSError as err:
            found = []
            self._say(f"Autosaves could not be checked for recovery: {err}")
        problem = paths.folder_problem(self.store.root)
        if problem is None:
            try:
                self.store.begin_session()
            except OSError as err:
                problem = str(err)
        if problem is not None:
            self.tell_unavailable(problem)
        if found:
            self.offer_recovery(found)

    def tell_unavailable(self, problem: str) -> None:
        """Say once that work is not autosaved, and why; each failed save then only marks its image."""
        self.unavailable = problem
        text = (f"Your work is not autosaved: {printable(problem)}.\n\nYou can open, correct and export images as "
                "usual, but work not exported is lost when the window closes (segstudio asks first). Make the "
                "folder writable, or set SEGSTUDIO_DATA_DIR to another folder, to have it autosaved.")
        box = QMessageBox(QMessageBox.Icon.Warning, "Autosave unavailable", text, QMessageBox.StandardButton.Ok,
                          self.window)
        box.setObjectName("dataFolderProblem")
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()
        QTimer.singleShot(0, self, lambda: self._say(f"Work is not autosaved: {printable(problem)}"))

    def offer_recovery(self, images: list[Path]) -> None:
        self._claim = {Path(p).resolve() for p in images}
        names = "".join(f"<li>{_html_name(p.name)}<br><small>{_html_name(p.parent)}</small></li>"
                        for p in images[:20])
        more = f"<p>…and {len(images) - 20} more.</p>" if len(images) > 20 else ""
        box = QMessageBox(QMessageBox.Icon.Question, "Recover unsaved work",
                          "<p>segstudio did not shut down cleanly last time. Work on these images was "
                          f"autosaved:</p><ul>{names}</ul>{more}<p>Open them with that work restored?</p>",
                          QMessageBox.StandardButton.NoButton, self.window)
        box.setObjectName("recoveryDialog")
        self.recover_button = box.addButton("Recover", QMessageBox.ButtonRole.AcceptRole)
        self.discard_button = box.addButton("Discard", QMessageBox.ButtonRole.DestructiveRole)
        box.addButton("Later", QMessageBox.ButtonRole.RejectRole)
        box.setDefaultButton(self.recover_button)

        def clicked(button) -> None:
            if button is self.recover_button:
                self.recover(images)
            elif button is self.discard_button:
                self.discard(images)

        box.buttonClicked.connect(clicked)
        self.recovery_box = box
        box.open()  # not modal to the event loop: the window stays usable while the user decides

    def recover(self, images: list[Path]) -> None:
        existing = [p for p in images if Path(p).exists()]
        missing = [printable(Path(p).name) for p in images if not Path(p).exists()]
        if existing:
            self.window.open_paths(existing)
        if missing:
            self.window.show_error("Cannot recover", "These images no longer exist: " + ", ".join(missing))

    def discard(self, images: list[Path]) -> None:
        for path in images:
            try:
                self.store.discard(path)
            except OSError as err:
                self._say(f"Could not remove the autosave of {printable(Path(path).name)}: {err}")
        self._claim.clear()
        self._say(f"Discarded the autosaved work on {count(len(images), 'image')}.")

    # --- documents -----------------------------------------------------------------------------
    def open_documents(self) -> list[ImageDocument]:
        """Every open document, the pages of open files that are not shown now included."""
        return list(self.window.all_documents())

    def watch(self, doc: ImageDocument) -> None:
        if doc in self._known:
            return
        self._known.add(doc)
        doc.undo_stack.indexChanged.connect(lambda _i, d=doc: self.schedule(d))
        doc.undo_stack.cleanChanged.connect(lambda clean, d=doc: None if clean else self.schedule(d))
        # Status alone (e.g. exported) changes no pixel, but a restored image should come back with it.
        doc.status_changed.connect(lambda _s, d=doc: self.schedule(d, force=True))
        # Objects found afresh replace the saved ones (their splits and merges) without an undo step.
        doc.objects_found.connect(lambda d=doc: self.schedule(d, force=True))

    def restore(self, doc: ImageDocument) -> bool:
        """Load the autosaved work for a just-opened image page, if there is any that fits it."""
        if doc in self._known:
            return False  # a page shown again holds newer work than its autosave
        self._claim_image(doc)
        return self._load_into(doc)

    def _load_into(self, doc: ImageDocument) -> bool:
        try:
            record = self.store.load(doc.path, doc.image.meta.page)
        except (OSError, ValueError) as err:
            self._say(f"The autosave of {doc.title} could not be read, so it was not restored: {err}")
            return False
        if record is None:
            return False
        extra = record.extra or {}
        if record.mask.shape != doc.image.shape or extra.get("page", doc.image.meta.page) != doc.image.meta.page:
            self._say(f"The autosave of {doc.title} belongs to a different version or page of it; not restored.")
            return False
        self.classes.adopt(record.classes)
        self.classes.attach(doc)
        mask = record.mask
        if mask.dtype not in (np.uint8, np.uint16):
            mask = mask.astype(self.classes.table.mask_dtype)
        doc.replace_mask(np.array(mask, copy=True), np.array(record.hand, dtype=bool, copy=True),
                         record.objects)
        try:
            doc.set_status(ImageStatus(extra.get("status", ImageStatus.EDITED.value)))
        except ValueError:
            doc.set_status(ImageStatus.EDITED)
        doc.model_version = extra.get("model_version")
        self._pending.discard(doc)
        self._forced.discard(doc)
        when = _describe_time(record.saved_at)
        # Said once the image is shown, next to what the window says about the image itself.
        QTimer.singleShot(0, self, lambda: self._say_restored(doc.title, when))
        resolved = Path(doc.path).resolve()
        if resolved in self._claim:
            # Saved again under this session, so a clean quit stops offering it for recovery.
            self._claim.discard(resolved)
            self.save_async(doc)
        return True

    # --- one window per image ------------------------------------------------------------------
    def _claim_image(self, doc: ImageDocument) -> bool:
        page = doc.image.meta.page
        try:
            claimed = self.store.claim_image(doc.path, page)
        except OSError:
            return True  # no lock can be made there: the autosave itself says what is wrong when it saves
        if claimed:
            self._held[(Path(doc.path), page)] = doc
            return True
        doc.read_only = ("it is open in another segstudio window, which saves it. Close it there to edit it "
                         "here; your next edit then takes it over with the work saved there.")
        self.window.show_error("Opened read-only",
                               f"{doc.title} is open in another segstudio window.\n\nIt opens here read-only, "
                               "so neither window saves over the other's work. Close it in the other window "
                               "to edit it here.")
        return False

    def take_over(self, doc: ImageDocument) -> bool:
        """Make a read-only image editable once the other window has let go, with its latest work loaded."""
        if doc.read_only is None:
            return True
        if self._closed or not self._claim_image(doc):
            return False
        doc.read_only = None
        self._load_into(doc)
        doc.undo_stack.clear()  # edits before the take-over were refused; the autosave holds this state
        self._say(f"{doc.title} is editable here now, with the work last saved in the other window.")
        self.saved.emit(doc)
        return True

    def release_closed(self) -> None:
        """Free the images no longer open here whose last save is written, for other windows to edit."""
        open_now = self.open_documents()
        saving = {job.doc for job in self._jobs.values()}
        for (path, page), doc in list(self._held.items()):
            if doc not in open_now and doc not in saving:
                del self._held[(path, page)]
                self.store.release_image(path, page)

    def schedule(self, doc: ImageDocument, *, force: bool = False) -> None:
        if self._closed or doc.read_only is not None or not shiboken6.isValid(self.timer):
            return
        if not shiboken6.isValid(doc.undo_stack):
            return  # a closed image's stack reports its last change while Qt deletes it
        if force:
            self._forced.add(doc)
        if doc.unsaved or force:
            self._pending.add(doc)
            self.timer.start()

    def save_pending(self) -> None:
        if self.busy():
            self.timer.start()  # mid-stroke: save the finished stroke, not half of it
            return
        docs, self._pending = self._pending, set()
        open_now = self.open_documents()
        for doc in docs:
            if doc in open_now:
                self.save_async(doc)

    def save_async(self, doc: ImageDocument) -> None:
        """Snapshot the document now and write it on the autosave thread."""
        if self._closed or doc.read_only is not None:
            return
        self._pending.discard(doc)
        job = self._snapshot(doc)
        future = self._executor.submit(self._write, job)
        self._jobs[future] = job
        future.add_done_callback(lambda _f, j=job: self._job_done.emit(j))

    def save_now(self, doc: ImageDocument) -> str | None:
        """Save in the foreground; returns why it failed, or None."""
        self._pending.discard(doc)
        if doc.read_only is not None:
            return None  # the other window holding it saves it
        job = self._snapshot(doc)
        self._write(job)
        self._finish(job)
        return job.error

    def needs_saving(self, doc: ImageDocument) -> bool:
        return doc.read_only is None and (doc.unsaved or doc in self._forced)

    # --- quitting ------------------------------------------------------------------------------
    def flush(self) -> list[tuple[ImageDocument, str]]:
        """Wait for background saves, then save whatever is still unsaved. Returns the failures."""
        self.timer.stop()
        self._pending.clear()
        self._quitting = True
        wait_futures(list(self._jobs))
        for job in list(self._jobs.values()):
            self._finish(job)
        failures = []
        for doc in self.open_documents():
            if self.needs_saving(doc) or doc.autosave_error:
                error = self.save_now(doc)
                if error:
                    failures.append((doc, error))
        self._quitting = False
        return failures

    def prepare_to_quit(self) -> bool:
        """Save everything; if that fails, ask before quitting. False means: do not close."""
        if self._closed:
            return True
        failures = self.flush()
        if failures and not self.ask_quit_anyway(failures):
            return False
        self.shutdown()
        return True

    def ask_quit_anyway(self, failures: list[tuple[ImageDocument, str]]) -> bool:
        details = "\n".join(f"{doc.title}: {reason}" for doc, reason in failures)
        box = QMessageBox(QMessageBox.Icon.Warning, "Save failed",
                          f"Your latest work on {count(len(failures), 'image')} could not be saved, and will be lost "
                          "if you quit now.", QMessageBox.StandardButton.Cancel, self.window)
        box.setObjectName("saveFailedDialog")
        box.setDetailedText(details)
        box.setInformativeText(details)
        quit_button = box.addButton("Quit Anyway", QMessageBox.ButtonRole.DestructiveRole)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.exec()
        return box.clickedButton() is quit_button

    def shutdown(self) -> None:
        """Stop saving and mark the session as ended cleanly."""
        if self._closed:
            return
        self._closed = True
        self.timer.stop()
        self._executor.shutdown(wait=True)
        try:
            self.store.end_session()
        except OSError:
            pass  # the next start offers recovery once more, which is harmless

    # --- internals -----------------------------------------------------------------------------
    def _snapshot(self, doc: ImageDocument) -> _SaveJob:
        extra = {
            "status": doc.status.value,
            "model_version": doc.model_version,
            "page": doc.image.meta.page,
            "source_shape": list(doc.image.shape),
        }
        self._forced.discard(doc)
        return _SaveJob(doc=doc, title=doc.title, path=doc.path, mask=doc.mask.copy(), hand=doc.hand.copy(),
                        classes=type(self.classes.table).from_list(self.classes.table.to_list()),
                        extra=extra, token=self._state_token(doc), objects=_compact(doc.model.objects))

    def _state_token(self, doc: ImageDocument) -> tuple:
        """What the saved state is: the undo position (and its command, since indices are reused) and classes."""
        stack = doc.undo_stack
        index = stack.index()
        command = stack.command(index - 1) if index > 0 else None
        return index, id(command) if command is not None else None, self.classes.generation

    def _write(self, job: _SaveJob) -> None:
        try:
            self.store.save(job.path, job.mask, job.classes, job.hand, extra=job.extra, page=job.extra["page"],
                            objects=job.objects)
        except OSError as err:
            job.error = str(err)
        except Exception as err:  # never let a bad save kill the worker silently
            job.error = f"{type(err).__name__}: {err}"
        finally:
            job.done.set()

    def _finish(self, job: _SaveJob) -> None:
        if job.handled or not job.done.is_set():
            return
        job.handled = True
        self._jobs = {f: j for f, j in self._jobs.items() if j is not job}
        doc = job.doc
        open_now = doc in self.open_documents()
        if not open_now:
            self.release_closed()
        if job.error:
            self._report_failure(job, open_now)
            return
        if not open_now:
            return
        doc.autosave_error = None
        if self._state_token(doc) == job.token:
            doc.undo_stack.setClean()
        elif not self._closed:
            self.schedule(doc)  # it changed while being saved
        self.saved.emit(doc)

    def _report_failure(self, job: _SaveJob, open_now: bool) -> None:
        doc = job.doc
        first = not open_now or doc.autosave_error is None
        if open_now:
            doc.autosave_error = job.error
            self.failed.emit(doc, job.error)
        self._say(f"Autosave of {job.title} failed: {job.error}. The image stays marked unsaved.")
        if first and not self._closed and not self._quitting and self.unavailable is None:
            self.window.show_error(
                "Autosave failed",
                f"Your work on {job.title} could not be autosaved:\n{job.error}\n\n"
                "It stays marked unsaved; segstudio tries again after your next change.",
            )

    def _current_message(self) -> str:
        return self.window.statusBar().currentMessage()

    def _say_restored(self, title: str, when: str) -> None:
        # Said next to what the window says about the image, which already names it: short enough to fit.
        shown = self._current_message()
        if title in shown:
            self._say(f"{shown} — restored your work autosaved {when}")
        else:
            self._say(f"Restored your work on {title} (autosaved {when}).")

    def _say(self, text: str) -> None:
        self.window.statusBar().showMessage(text, 15000)
