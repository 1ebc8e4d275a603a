"""Bringing images into the window: File > Open, Open Folder, Open Sample, drops, and View > Channels
and Page (a different page is a different image read from the file, with its own mask; the page left is
kept, so its mask and undo history come back with it).

Reading happens here and hands ImageDocuments to the window, which keeps the list of open documents.
Files are read in a pool thread (a big slide takes seconds) while the window keeps painting; a reading
that outlasts PROGRESS_DELAY_MS shows a progress dialog whose Cancel stops the opening.
"""
from __future__ import annotations

import threading
from collections.abc import Iterable
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QEventLoop, QObject, QRunnable, QSettings, Qt, QThreadPool, Signal
from PySide6.QtWidgets import QFileDialog, QProgressDialog

from segstudio.core import paths
from segstudio.core.document import Document
from segstudio.core.imageio import SUPPORTED_SUFFIXES, ImageReadError, Slide, is_whole_slide, read_image
from segstudio.core.text import printable
from segstudio.gui.documents.document import ImageDocument
from segstudio.gui.documents.pages import PageShelf
from segstudio.gui.settings import LAST_FOLDER_KEY

# Readings quicker than this (every small image) open without a dialog flashing up.
PROGRESS_DELAY_MS = 500


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


class _ReadSignals(QObject):
    finished = Signal()


class _ReadJob(QRunnable):
    """Reads one image and makes its Document (mask, display picture) in a pool thread."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.setAutoDelete(False)  # the controller holds it until its signal has arrived
        self.path = path
        self.signals = _ReadSignals()
        self.done = threading.Event()
        self.document: Document | None = None
        self.error: ImageReadError | None = None

    def run(self) -> None:
        try:
            document = Document(read_image(self.path))
            document.display_picture()  # the display stretch takes time too: here, not on the GUI thread
            self.document = document
        except ImageReadError as err:
            self.error = err
        except MemoryError:
            self.error = ImageReadError(self.path, "not enough memory to open the image")
        except Exception as err:  # an exception would die with the thread; the user must hear of it
            self.error = ImageReadError(self.path, f"{type(err).__name__}: {err}")
        finally:
            self.done.set()
            self.signals.finished.emit()


class OpeningController(QObject):
    slide_opened = Signal(object)  # the SlideWindow of a whole slide just opened
    slide_window_opened = Signal(object)  # a new slide window, before it shows (features add their docks)

    def __init__(self, window) -> None:
        super().__init__(window)
        self.window = window
        # One reading at a time: two big slides decoding at once would hold both in memory twice over.
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(1)
        self._jobs: set[_ReadJob] = set()  # read in the pool or waiting for their signal to arrive
        self._queue: list[Path] | None = None  # files of the opening under way (None: none is)
        self._loop: QEventLoop | None = None
        self._cancelled = False
        self.slide_windows: list = []  # whole slides open in their own windows
        a = window.actions
        a.open.triggered.connect(self.choose_files)
        a.open_folder.triggered.connect(self.choose_folder)
        a.channels.triggered.connect(self.choose_channels)
        # Pages of open files that are not shown now, kept with their masks and undo history.
        self.pages = PageShelf(self)
        window.documents_changed.connect(self._release_closed_pages)
        self.populate_samples_menu()

    def populate_samples_menu(self) -> None:
        menu = self.window.menus["samples"]
        menu.clear()
        samples = sorted(p for p in paths.samples_dir().glob("*") if p.suffix.lower() in SUPPORTED_SUFFIXES)
        for sample in samples:
            action = menu.addAction(sample.name)
            action.triggered.connect(lambda _=False, p=sample: self.open_paths([p]))
        if not samples:
            empty = menu.addAction("(no sample images installed)")
            empty.setEnabled(False)

    # --- choosing ------------------------------------------------------------------------------
    def choose_files(self) -> None:
        settings = QSettings()
        start = settings.value(LAST_FOLDER_KEY, str(Path.home()))
        patterns = " ".join(f"*{s}" for s in SUPPORTED_SUFFIXES)
        files, _ = QFileDialog.getOpenFileNames(self.window, "Open Images", start,
                                                f"Images ({patterns});;All files (*)")
        if files:
            settings.setValue(LAST_FOLDER_KEY, str(Path(files[0]).parent))
            self.open_paths(files)

    def choose_folder(self) -> None:
        settings = QSettings()
        folder = QFileDialog.getExistingDirectory(self.window, "Open Folder",
                                                  settings.value(LAST_FOLDER_KEY, str(Path.home())))
        if folder:
            settings.setValue(LAST_FOLDER_KEY, folder)
            self.open_paths([folder])

    # --- reading ---------------------------------------------------------------------------------
    def open_paths(self, items: Iterable[str | Path]) -> list[ImageDocument]:
        """Open images (folders expanded); show the first that opened. Bad files are reported, not fatal.

        Each file is read off the GUI thread while the window keeps painting; this returns once all are
        read or the user cancelled (the images opened before Cancel stay open). Files asked for while
        an opening is under way (a drop) join it, and this returns [] for them.
        """
        if self._queue is not None:
            self._queue.extend(expand_image_paths(items))
            return []
        window = self.window
        opened: list[ImageDocument] = []
        errors: list[str] = []
        self._queue, self._cancelled = expand_image_paths(items), False
        progress = self._progress_dialog(len(self._queue))
        try:
            while self._queue and not self._cancelled:
                path = self._queue.pop(0)
                if self._opened_as_slide(path, errors):
                    continue
                doc = self.find_document(path)
                if doc is None:
                    try:
                        doc = self._open_one(path, progress, len(opened) + len(errors))
                    except ImageReadError as err:
                        errors.append(str(err))
                        continue
                    if doc is None:
                        break  # cancelled
                    window.documents.append(doc)
                    window.documents_changed.emit()
                opened.append(doc)
                if len(opened) == 1:
                    window.set_current(doc)  # something to look at while the rest are read
        finally:
            self._queue = None
            progress.close()
            progress.deleteLater()
        if errors:
            window.show_error("Some files could not be opened" if len(errors) > 1 else "Cannot open image",
                              "\n".join(errors))
        return opened

    def _opened_as_slide(self, path: Path, errors: list[str]) -> bool:
        """Whole-slide images open at once (headers only) in a slide window; True when ``path`` was one."""
        try:
            if not is_whole_slide(path):
                return False
        except ImageReadError:
            return False  # the ordinary reader names what is wrong with the file
        opened = self.find_slide_window(path)
        if opened is not None:  # one window per slide: two would save over each other's labels
            opened.raise_()
            opened.activateWindow()
            return True
        try:
            self.open_slide(Slide(path))
        except ImageReadError as err:
            errors.append(str(err))
        return True

    def open_slide(self, slide: Slide):
        from segstudio.gui.review.slide import attach_slide_review
        from segstudio.gui.slides.export import attach_slide_export
        from segstudio.gui.slides.window import open_slide_window

        # A child of the main window (still a window of its own), so quitting closes it too; what it
        # painted since its last autosave is written as the application quits. Its classes are the
        # session's (those of the open images, a project's or the last session's).
        window = open_slide_window(slide, self.window, self.window.editing.classes.table)
        attach_slide_review(window, self.window.model_host)
        attach_slide_export(window)
        QCoreApplication.instance().aboutToQuit.connect(window.doc.save_and_wait)
        self.slide_windows.append(window)
        window.destroyed.connect(lambda _=None, w=window: self.slide_windows.remove(w)
                                 if w in self.slide_windows else None)
        self.slide_window_opened.emit(window)
        window.show()
        self.slide_opened.emit(window)
        return window

    def find_slide_window(self, path: str | Path):
        target = Path(path).resolve()
        return next((w for w in self.slide_windows if Path(w.doc.path).resolve() == target), None)

    def _progress_dialog(self, total: int) -> QProgressDialog:
        dialog = QProgressDialog("Opening...", "Cancel", 0, total if total > 1 else 0, self.window)
        dialog.setObjectName("openProgress")
        dialog.setWindowTitle("Opening images")
        dialog.setMinimumWidth(360)  # room for a long file name
        dialog.setWindowModality(Qt.WindowModality.WindowModal)
        dialog.setAutoClose(False)
        dialog.setAutoReset(False)
        dialog.setMinimumDuration(PROGRESS_DELAY_MS)
        dialog.canceled.connect(self.cancel)
        dialog.setValue(0)  # starts the clock: the dialog appears once the opening has taken the delay
        return dialog

    def _open_one(self, path: Path, progress: QProgressDialog, done: int) -> ImageDocument | None:
        """Read ``path`` in the pool while the GUI thread runs its events; None if cancelled."""
        total = done + 1 + len(self._queue)
        progress.setLabelText(f"Opening {printable(path.name)}" + (f" ({done + 1} of {total})" if total > 1 else ""))
        if progress.maximum() > 0:
            progress.setMaximum(total)
            progress.setValue(done)
        job = _ReadJob(path)
        self._jobs.add(job)
        job.signals.finished.connect(lambda j=job: self._jobs.discard(j))
        loop = self._loop = QEventLoop()
        job.signals.finished.connect(loop.quit)
        self._pool.start(job)
        try:
            if not job.done.is_set():
                loop.exec()
        finally:
            self._loop = None
        if self._cancelled or not job.done.is_set():  # Cancel, or the application is quitting
            self._cancelled = True
            return None  # the reading still finishing in the pool is dropped with its job
        if job.error is not None:
            raise job.error
        return ImageDocument(job.document.image, parent=self.window, model=job.document)

    def cancel(self) -> None:
        """Stop the opening under way: the image being read is not opened, nor are those after it."""
        self._cancelled = True
        if self._loop is not None:
            self._loop.quit()

    def _read(self, path: Path, page: int = 0):
        # Another page of a file that is already open: one page, read in place.
        self.window.setCursor(Qt.CursorShape.WaitCursor)
        try:
            return read_image(path, page=page)
        finally:
            self.window.unsetCursor()

    def find_document(self, path: str | Path) -> ImageDocument | None:
        target = Path(path).resolve()
        return next((d for d in self.window.documents if d.path.resolve() == target), None)

    def choose_channels(self) -> None:
        from segstudio.gui.canvas.channels import ChannelsDialog

        window = self.window
        doc = window.current
        if doc is None:
            return
        dialog = ChannelsDialog(doc, window)
        if not dialog.exec():
            return
        page, channels = dialog.selection()
        doc = self.show_page(doc, page)
        if doc is None:
            return
        doc.set_display_channels(channels)
        window.canvas.set_image(doc.display_picture(), doc.model.pixel_size_um)
        window.canvas.set_mask(doc.mask, doc.classes.lut_rgba())

    def show_page(self, doc: ImageDocument, page: int) -> ImageDocument | None:
        """Show another page of ``doc``'s file in its place. ``doc`` is kept with its mask and undo history
        (a page is a different image, with its own mask), and comes back when its page is chosen again."""
        window = self.window
        if page == doc.image.meta.page:
            return doc
        replacement = self.pages.take(doc.path, page)
        if replacement is None:
            try:
                image = self._read(doc.path, page=page)
            except ImageReadError as err:
                window.show_error("Cannot open image", str(err))
                return None
            replacement = ImageDocument(image, classes=doc.classes, parent=window)
        self.pages.put(doc)
        window.documents[window.documents.index(doc)] = replacement
        window.documents_changed.emit()
        window.set_current(replacement)
        return replacement

    def _release_closed_pages(self) -> None:
        for doc in self.pages.release_closed(self.window.documents):
            doc.deleteLater()
