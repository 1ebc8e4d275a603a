"""A workday that survives a restart: the window's size and panels, File > Open Recent, the offer to reopen the
last session, and a project folder that opens with its masks and classes after it has moved."""
import shutil

import numpy as np
import pytest
import tifffile
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QApplication, QMessageBox

from segstudio.gui import session as session_module
from tests.gui.window.test_pages import choose_page, paint_stroke

LEFT = Qt.MouseButton.LeftButton


def _write_images(folder, names=("first.tif", "second.tif")):
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for number, name in enumerate(names):
        pixels = np.full((40, 50), 100 + 50 * number, np.uint16)
        pixels[10:30, 15:35] = 3000
        tifffile.imwrite(folder / name, pixels)
        paths.append(folder / name)
    return paths


def _click_button(box, text, qtbot):
    (button,) = [b for b in box.buttons() if b.text() == text]
    qtbot.mouseClick(button, LEFT)


# --- 15: size, position and panels ---------------------------------------------------------------------
def test_the_next_window_restores_size_and_hidden_panels(window, qtbot):
    from segstudio.gui.main_window import MainWindow

    images_dock = window.editing.images_dock
    assert images_dock.isVisible()
    images_dock.toggleViewAction().trigger()  # View > Panels > Images, unticked
    window.resize(700, 500)  # the offscreen screen is small; a size that fits it is restored as it was
    qtbot.waitUntil(lambda: window.size().width() == 700)
    size = (window.width(), window.height())  # the panels may keep the window taller than asked
    assert size != (1280, 820)  # a new window's own size
    window.close()

    again = MainWindow()
    qtbot.addWidget(again)
    again.show()
    qtbot.waitExposed(again)
    assert (again.width(), again.height()) == size
    assert again.editing.images_dock.isHidden() and not again.editing.images_dock.toggleViewAction().isChecked()
    assert again.editing.tools_dock.isVisible()


# --- 16: Open Recent -------------------------------------------------------------------------------------
def test_open_recent_lists_last_files_newest_first_and_greys_out_missing_ones(make_window, tmp_path, qtbot):
    first, second = _write_images(tmp_path / "images")
    window = make_window()
    window.open_paths([first])
    window.open_paths([second])
    window.close()

    again = make_window()
    menu = again.menus["recent"]
    assert [a.text().replace("&", "") for a in again.session.recent.actions()] == ["1 second.tif", "2 first.tif"]
    second.unlink()
    menu.popup(again.mapToGlobal(QPoint(10, 10)))  # the menu checks its files as it opens
    qtbot.waitUntil(menu.isVisible)
    menu.hide()
    gone, present = again.session.recent.actions()
    assert "not found" in gone.text() and not gone.isEnabled()
    assert present.isEnabled()
    present.trigger()
    assert [d.title for d in again.documents] == ["first.tif"]
    # Clear List empties the menu.
    next(a for a in menu.actions() if a.text() == "Clear &List").trigger()
    assert again.session.recent.actions() == []


# --- 16: the last session --------------------------------------------------------------------------------
def test_reopening_offers_the_last_session_with_masks_classes_and_view(make_window, tmp_path, qtbot):
    first, second = _write_images(tmp_path / "images")
    window = make_window()
    window.open_paths([first, second])
    window.editing.classes.add("stroma", (0, 200, 100))
    window.actions.next_image.trigger()
    paint_stroke(qtbot, window, [(20, 20), (24, 20)])
    painted = window.current.mask.copy()
    window.actions.zoom_in.trigger()
    window.actions.zoom_in.trigger()
    zoom = window.canvas.zoom()
    window.close()

    again = make_window()
    assert again.documents == []
    box = again.session.offer_last_session()
    assert box is not None and box.isVisible() and "2 image(s)" in box.text()
    _click_button(box, "Reopen", qtbot)
    assert [d.title for d in again.documents] == ["first.tif", "second.tif"]
    assert again.current.title == "second.tif"
    np.testing.assert_array_equal(again.current.mask, painted)
    assert "stroma" in again.current.classes.names()
    assert again.canvas.zoom() == pytest.approx(zoom)


def test_start_empty_opens_nothing_and_no_offer_without_a_session(make_window, tmp_path, qtbot):
    (only,) = _write_images(tmp_path / "images", ("only.tif",))
    window = make_window()
    assert window.session.offer_last_session() is None  # nothing was open last time
    window.open_paths([only])
    window.close()
    again = make_window()
    box = again.session.offer_last_session()
    _click_button(box, "Start Empty", qtbot)
    assert again.documents == []


# --- 16: project files -----------------------------------------------------------------------------------
def _answer_folder(monkeypatch, folder):
    monkeypatch.setattr(session_module.QFileDialog, "getExistingDirectory", lambda *args, **kwargs: str(folder))


def test_a_saved_project_opens_with_its_masks_classes_and_model_after_the_folder_moved(make_window, tmp_path, qtbot,
                                                                                       monkeypatch, counted_library):
    work = tmp_path / "work"
    first, second = _write_images(work / "images")
    stack = work / "images" / "stack.tif"
    tifffile.imwrite(stack, np.full((3, 40, 50), 500, np.uint16), photometric="minisblack",
                     metadata={"axes": "ZYX"})
    tiny, other = counted_library["ids"]
    window = make_window()
    window.prediction.reload_models()
    assert window.prediction.select_model(other)
    window.open_paths([first, second, stack])
    window.editing.classes.add("stroma", (0, 200, 100))
    window.actions.previous_image.trigger()  # the stack, last in the list
    paint_stroke(qtbot, window, [(10, 10), (14, 10)])  # on page 1 of the stack
    stack_page_one = window.current.mask.copy()
    choose_page(qtbot, window, 3)
    paint_stroke(qtbot, window, [(30, 30), (30, 34)])
    stack_page_three = window.current.mask.copy()
    window.set_current(window.documents[0])
    paint_stroke(qtbot, window, [(20, 20), (24, 20)])
    first_mask = window.current.mask.copy()
    _answer_folder(monkeypatch, work / "project")
    window.actions.save_project.trigger()  # File > Save Project
    assert (work / "project" / "segstudio-project.json").exists()
    window.close()

    moved = tmp_path / "another-machine" / "work"
    shutil.move(str(work), str(moved))
    again = make_window()
    again.prediction.reload_models()
    assert again.prediction.select_model(tiny)  # this machine had another model chosen
    _answer_folder(monkeypatch, moved / "project")
    again.actions.open_project.trigger()  # File > Open Project
    assert again.last_error is None
    assert [d.path for d in again.documents] == [(moved / "images" / n).resolve()
                                                 for n in ("first.tif", "second.tif", "stack.tif")]
    assert again.current.title == "first.tif"
    np.testing.assert_array_equal(again.current.mask, first_mask)
    assert not again.documents[1].mask.any()
    assert "stroma" in again.current.classes.names()
    assert again.prediction.model_id() == other
    stack_doc = again.documents[2]
    assert stack_doc.image.meta.page == 2
    np.testing.assert_array_equal(stack_doc.mask, stack_page_three)
    again.set_current(stack_doc)
    choose_page(qtbot, again, 1)
    np.testing.assert_array_equal(again.current.mask, stack_page_one)
    # Opening the project is one undo step: what the image held before is one Undo away.
    again.actions.undo.trigger()
    assert not again.current.mask.any()


def test_save_project_writes_on_a_thread_while_the_window_keeps_drawing(window, tmp_path, qtbot, monkeypatch):
    # A slide's labels are thousands of chunk files: the window used to freeze while they were copied.
    import threading
    import time

    from PySide6.QtCore import QTimer

    window.open_paths(_write_images(tmp_path / "images"))
    written_on, real_save = [], session_module.save_project

    def slow_save(*args, **kwargs):
        written_on.append(threading.current_thread())
        time.sleep(0.8)  # as a large copy takes
        return real_save(*args, **kwargs)

    monkeypatch.setattr(session_module, "save_project", slow_save)
    ticks = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(time.monotonic()))
    timer.start(20)
    _answer_folder(monkeypatch, tmp_path / "project")
    window.actions.save_project.trigger()  # File > Save Project
    timer.stop()
    assert written_on and written_on[0] is not threading.main_thread()
    assert len(ticks) >= 10  # the GUI thread ran its events (redraws, timers) during the save
    assert (tmp_path / "project" / "segstudio-project.json").exists()
    assert window.last_error is None
    from PySide6.QtWidgets import QProgressDialog

    assert not any(box.isVisible() for box in window.findChildren(QProgressDialog, "backgroundProgress"))


def test_a_failed_background_save_names_the_folder_and_the_reason(window, tmp_path, monkeypatch):
    window.open_paths(_write_images(tmp_path / "images"))
    blocker = tmp_path / "project"
    blocker.write_text("a file where the project's folder should go")
    _answer_folder(monkeypatch, blocker)
    window.actions.save_project.trigger()  # File > Save Project
    assert window.last_error is not None and "Not a directory" in window.last_error, window.last_error


def test_opening_a_folder_without_a_project_names_the_file_and_the_reason(window, tmp_path, monkeypatch, qtbot):
    _answer_folder(monkeypatch, tmp_path)
    window.actions.open_project.trigger()
    qtbot.waitUntil(lambda: isinstance(QApplication.activeModalWidget(), QMessageBox))
    assert "segstudio-project.json" in window.last_error and "no project file" in window.last_error
