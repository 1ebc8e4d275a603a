"""A workday that survives a restart: the window's size and panel layout, File > Open Recent, the offer to
reopen what was open last time, and File > Save Project / Open Project.

The project format and its checks live in core.project (Qt-free); this module gathers the window's state
into a Project and puts a Project back into the window. Masks of the last session come back through the
autosave, which restores each image's work when it opens; a project folder carries its own masks. Whole
slides (each in its slide window) are listed too, with their view; their labels come back the same ways.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import shiboken6
from PySide6.QtCore import QObject, QPointF, QSettings, Qt, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QFileDialog, QMenu, QMessageBox

from segstudio.core import paths
from segstudio.core.document import ImageStatus
from segstudio.core.project import (
    Project,
    ProjectError,
    ProjectImage,
    ProjectSlide,
    ViewState,
    load_saved_mask,
    load_saved_objects,
    manifest_path,
    mask_change,
    read_manifest,
    save_project,
    write_manifest,
)
from segstudio.gui.settings import (
    PROJECT_FOLDER_KEY,
    RECENT_FILES_KEY,
    WINDOW_GEOMETRY_KEY,
    WINDOW_STATE_KEY,
)

RECENT_LIMIT = 10
SESSION_FILE = "session.json"


def session_path() -> Path:
    """Where the images open at the last quit are listed (in the user data folder, beside the autosave)."""
    return paths.user_data_dir() / SESSION_FILE


class RecentFiles(QObject):
    """File > Open Recent: the last files opened, newest first; files that are gone are shown greyed out."""

    def __init__(self, menu: QMenu, open_paths: Callable[[list[Path]], object], parent: QObject | None = None):
        super().__init__(parent)
        self.menu = menu
        self._open_paths = open_paths
        menu.aboutToShow.connect(self.rebuild)  # a file deleted meanwhile is greyed out when the menu opens
        self.rebuild()

    def paths(self) -> list[Path]:
        value = QSettings().value(RECENT_FILES_KEY, [])
        items = [value] if isinstance(value, str) else list(value or [])
        return [Path(item) for item in items if item]

    def add(self, path: Path) -> None:
        path = Path(path).resolve()
        items = [path] + [p for p in self.paths() if p != path]
        QSettings().setValue(RECENT_FILES_KEY, [str(p) for p in items[:RECENT_LIMIT]])
        self.rebuild()

    def clear(self) -> None:
        QSettings().setValue(RECENT_FILES_KEY, [])
        self.rebuild()

    def rebuild(self) -> None:
        self.menu.clear()
        recent = self.paths()
        for number, path in enumerate(recent, start=1):
            present = path.exists()
            text = f"&{number % 10} {path.name}" + ("" if present else "  (not found)")
            action = self.menu.addAction(text)
            action.setData(str(path))
            action.setStatusTip(str(path) if present else f"{path} no longer exists (moved, renamed or deleted)")
            action.setToolTip(action.statusTip())
            action.setEnabled(present)
            action.triggered.connect(lambda _=False, p=path: self._open_paths([p]))
        if not recent:
            self.menu.addAction("(no recent images)").setEnabled(False)
            return
        self.menu.addSeparator()
        self.menu.addAction("Clear &List").triggered.connect(self.clear)

    def actions(self) -> list[QAction]:
        """The entries for files, in menu order."""
        return [a for a in self.menu.actions() if a.data()]


class SessionController(QObject):
    classes_offered = Signal(object)  # the ClassTable of an opened project or session

    def __init__(self, window) -> None:
        super().__init__(window)
        self.window = window
        self.session_box: QMessageBox | None = None
        self.recent = RecentFiles(window.menus["recent"], window.open_paths, self)
        self._seen: set[Path] = set()
        window.documents_changed.connect(self._remember_opened)
        window.opening.slide_opened.connect(lambda slide_window: self.recent.add(slide_window.doc.path))
        window.actions.save_project.triggered.connect(self.choose_project_to_save)
        window.actions.open_project.triggered.connect(self.choose_project_to_open)
        self.restore_layout()

    # --- window layout -------------------------------------------------------------------------
    def restore_layout(self) -> None:
        """Size, position and panels as the user left them (called once every panel is docked)."""
        settings = QSettings()
        geometry, state = settings.value(WINDOW_GEOMETRY_KEY), settings.value(WINDOW_STATE_KEY)
        # Geometry first: the docks' saved sizes are laid out in the window's restored size.
        if geometry is not None:
            self.window.restoreGeometry(geometry)
        if state is not None:
            self.window.restoreState(state)
            return
        # First start: the Model panel gets its whole height (Predict and its result in sight), the short
        # list of classes what is left of the column.
        window = self.window
        window.resizeDocks([window.prediction.dock, window.editing.classes_dock],
                           [window.prediction.panel.sizeHint().height(), 1], Qt.Orientation.Vertical)

    def save_on_quit(self) -> None:
        settings = QSettings()
        settings.setValue(WINDOW_GEOMETRY_KEY, self.window.saveGeometry())
        settings.setValue(WINDOW_STATE_KEY, self.window.saveState())
        try:
            write_manifest(session_path(), self.snapshot(), relative=False)
        except OSError:
            pass  # the next start only misses the offer to reopen; the masks are in the autosave

    # --- recent files --------------------------------------------------------------------------
    def _remember_opened(self) -> None:
        for doc in self.window.documents:
            key = Path(doc.path).resolve()
            if key not in self._seen:
                self._seen.add(key)
                self.recent.add(key)

    # --- the window's state as a Project, and back ---------------------------------------------
    def snapshot(self) -> Project:
        window = self.window
        docs = window.all_documents()
        images = [ProjectImage(doc.path, doc.image.meta.page, doc.display_channels, shown=doc in window.documents,
                               status=doc.status.value, model_input=_model_input_of(doc)) for doc in docs]
        view = None
        if window.current is not None:
            canvas = window.canvas
            centre = canvas.mapToScene(canvas.viewport().rect().center())
            view = ViewState(canvas.zoom(), (centre.x(), centre.y()))
        slides = [ProjectSlide(w.doc.path, ViewState(*w.view_state())) for w in self._slide_windows()]
        return Project(images=images, classes=docs[0].classes if docs else window.editing.classes.table,
                       model=window.prediction.model_id(),
                       current=docs.index(window.current) if window.current in docs else None, view=view,
                       slides=slides)

    def _slide_windows(self) -> list:
        return [w for w in self.window.opening.slide_windows if shiboken6.isValid(w) and not w.doc.closed]

    def apply(self, project: Project, folder: Path | None = None) -> list[str]:
        """Open the project's images with their pages, channels and (from ``folder``) masks; show its view.

        Returns what could not be brought back, one line per image, naming the file and the reason.
        """
        window = self.window
        self.classes_offered.emit(project.classes)
        problems: list[str] = []
        opened: dict[int, object] = {}
        for entries in _by_file(project.images):
            located = project.locate(entries[0][1])
            if not located.exists():
                problems.append(f"{located.name}: not found at {located.parent}")
                continue
            docs = window.open_paths([located])
            doc = docs[0] if docs else None
            for index, image in sorted(entries, key=lambda item: item[1].shown):  # the shown page last
                doc = window.opening.show_page(doc, image.page) if doc is not None else None
                if doc is None:
                    break
                opened[index] = doc
                problems += self._bring_back(doc, image, folder)
        for slide in project.slides:
            problems += self._bring_back_slide(project, slide, folder)
        if project.model:
            window.prediction.select_model(project.model)
        window.prediction.refresh_input()
        current = opened.get(project.current) if project.current is not None else None
        if current in window.documents:
            window.set_current(current)
            if project.view is not None:
                window.canvas.set_zoom(project.view.zoom)
                window.canvas.centerOn(QPointF(*project.view.centre))
        return problems

    def _bring_back(self, doc, image: ProjectImage, folder: Path | None) -> list[str]:
        if image.channels is not None and max(image.channels) < doc.image.meta.channels:
            doc.set_display_channels(image.channels)
            if doc is self.window.current:
                self.window.canvas.set_image(doc.display_picture(), doc.model.pixel_size_um)
        chosen = image.model_input
        if chosen is not None and max(chosen["channels"] or [0]) < doc.image.meta.channels:
            # The Model panel shows it as "your choice" when the model offers it, as when it was made.
            doc.model.model_channels = None if chosen["channels"] is None else tuple(chosen["channels"])
            doc.model.model_stain = chosen["stain"]
            doc.model.model_channels_chosen = True
        if folder is None:
            return []
        try:
            saved = load_saved_mask(folder, image)
            diff = None if saved is None else mask_change(doc.mask, doc.hand, *saved)
            objects = load_saved_objects(folder, image, doc.mask.shape)
        except (ProjectError, ValueError) as err:
            return [f"{doc.title}: {err}"]
        if diff is not None:
            doc.push_diff(diff, "Open Project")  # one Undo away from the work the image held before
        problems = []
        if objects is not None and np.array_equal(objects > 0, doc.mask > 0):
            doc.set_objects(objects)  # as split and merged then
        elif objects is not None:
            problems.append(f"{doc.title}: its objects ({image.objects}) do not cover the same pixels as its mask; "
                            "they will be found afresh from the mask")
        if image.status:
            doc.set_status(ImageStatus(image.status) if image.status in {s.value for s in ImageStatus}
                           else ImageStatus.EDITED)
        return problems

    def _bring_back_slide(self, project: Project, slide: ProjectSlide, folder: Path | None) -> list[str]:
        """Open a slide in its window (its labels come from the autosave), show its view and, from a
        project ``folder``, the labels the project saved, as one undo step."""
        located = project.locate(slide)
        if not located.exists():
            return [f"{located.name}: not found at {located.parent}"]
        self.window.open_paths([located])
        opened = self.window.opening.find_slide_window(located)
        if opened is None:
            return []  # open_paths has said why
        if slide.view is not None:
            opened.show_view(slide.view.zoom, slide.view.centre)
        if folder is not None and slide.labels and slide.hand:
            try:
                kept = opened.doc.bring_in(folder / slide.labels, folder / slide.hand, "Open Project")
            except (OSError, ValueError) as err:
                return [f"{located.name}: the project's labels cannot be read ({err})"]
            if kept is not None:
                opened.statusBar().showMessage(f"The project's labels are shown; the labels this slide held "
                                               f"before are kept in {kept}.", 30000)
        return []

    # --- the last session ----------------------------------------------------------------------
    def offer_last_session(self) -> QMessageBox | None:
        """At start: offer to reopen the images that were open when segstudio last quit."""
        try:
            project = read_manifest(session_path())
        except ProjectError:
            return None  # no session yet, or one that cannot be used: nothing to offer
        present = [image for image in project.images if image.shown and project.locate(image).exists()]
        present += [slide for slide in project.slides if project.locate(slide).exists()]
        if not present:
            return None
        names = "".join(f"<li>{image.path.name}</li>" for image in present[:10])
        more = f"<p>…and {len(present) - 10} more.</p>" if len(present) > 10 else ""
        box = QMessageBox(QMessageBox.Icon.Question, "Reopen last session",
                          f"<p>Reopen the {len(present)} image(s) you had open last time, with their masks, "
                          f"classes, model and view?</p><ul>{names}</ul>{more}",
                          QMessageBox.StandardButton.NoButton, self.window)
        box.setObjectName("sessionDialog")
        reopen = box.addButton("Reopen", QMessageBox.ButtonRole.AcceptRole)
        box.addButton("Start Empty", QMessageBox.ButtonRole.RejectRole)
        box.setDefaultButton(reopen)
        box.buttonClicked.connect(lambda button: self._reopen(project) if button is reopen else None)
        self.session_box = box
        box.open()  # the window stays usable while the user decides
        return box

    def _reopen(self, project: Project) -> None:
        problems = self.apply(project)
        if problems:
            self.window.show_error("Some images of the last session could not be reopened", "\n".join(problems))

    # --- project files -------------------------------------------------------------------------
    def choose_project_to_save(self) -> None:
        settings = QSettings()
        folder = QFileDialog.getExistingDirectory(
            self.window, "Save Project: choose or create a folder for it",
            settings.value(PROJECT_FOLDER_KEY, str(Path.home())))
        if folder:
            settings.setValue(PROJECT_FOLDER_KEY, folder)
            self.save_project(Path(folder))

    def save_project(self, folder: Path) -> bool:
        window = self.window
        project = self.snapshot()
        if not project.images and not project.slides:
            window.show_error("Nothing to save", "Open an image first; a project lists the images you work on.")
            return False
        work = [(doc.mask, doc.hand, doc.model.objects) for doc in window.all_documents()]
        slide_labels = []
        for slide_window in self._slide_windows():  # the same windows, in the same order, as the snapshot's
            slide_window.doc.save_and_wait()
            slide_labels.append(slide_window.doc.label_folders())
        try:
            # A slide's labels are folders of thousands of chunk files: copied on a thread, the window stays
            # drawn (behind a progress box that blocks editing while the masks are being written).
            manifest = _in_background(self.window, "Saving the project", f"Saving the project in {folder.name}...",
                                      lambda: save_project(folder, project, work, slide_labels))
        except OSError as err:
            window.show_error("Cannot save the project", str(err))
            return False
        window.statusBar().showMessage(
            f"Saved the project ({len(project.images)} image(s) with their masks) in {manifest.parent}.", 10000)
        return True

    def choose_project_to_open(self) -> None:
        settings = QSettings()
        folder = QFileDialog.getExistingDirectory(self.window, "Open Project: choose its folder",
                                                  settings.value(PROJECT_FOLDER_KEY, str(Path.home())))
        if folder:
            settings.setValue(PROJECT_FOLDER_KEY, folder)
            self.open_project(Path(folder))

    def open_project(self, folder: Path) -> bool:
        try:
            project = read_manifest(folder)
        except ProjectError as err:
            self.window.show_error("Cannot open project", str(err))
            return False
        problems = self.apply(project, manifest_path(folder).parent)
        if problems:
            self.window.show_error("Parts of the project could not be opened", "\n".join(problems))
        else:
            self.window.statusBar().showMessage(f"Opened the project in {folder}.", 8000)
        return not problems


def _by_file(images: list[ProjectImage]) -> list[list[tuple[int, ProjectImage]]]:
    """The project's entries grouped by image file, in the order the files first appear."""
    groups: dict[Path, list[tuple[int, ProjectImage]]] = {}
    for index, image in enumerate(images):
        groups.setdefault(image.path, []).append((index, image))
    return list(groups.values())


def _model_input_of(doc) -> dict | None:
    """What the user chose to feed the model from this image, or None when the panel's default is in use."""
    model = doc.model
    if not model.model_channels_chosen:
        return None
    channels = None if model.model_channels is None else [int(c) for c in model.model_channels]
    return {"channels": channels, "stain": model.model_stain or ""}


def _in_background(parent, title: str, text: str, work: Callable[[], object]) -> object:
    """``work()`` on a thread of its own while the GUI thread goes on drawing; returns what it returned or
    raises what it raised. A window-modal box says what is happening once it has taken half a second."""
    import threading

    from PySide6.QtCore import QEventLoop
    from PySide6.QtWidgets import QApplication, QProgressDialog

    done, outcome = threading.Event(), {}

    def run() -> None:
        try:
            outcome["value"] = work()
        except BaseException as err:  # noqa: BLE001 - handed to the GUI thread, which raises it
            outcome["error"] = err
        finally:
            done.set()

    thread = threading.Thread(target=run, name=title.lower().replace(" ", "-"), daemon=True)
    dialog = QProgressDialog(text, None, 0, 0, parent)
    dialog.setObjectName("backgroundProgress")
    dialog.setWindowTitle(title)
    dialog.setWindowModality(Qt.WindowModality.WindowModal)
    dialog.setMinimumDuration(500)
    dialog.setValue(0)
    thread.start()
    try:
        while not done.wait(0.02):
            QApplication.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 20)
    finally:
        dialog.close()
        dialog.deleteLater()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]
