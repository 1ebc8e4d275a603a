"""Whole slides come back like images: from File > Open Recent, the offer to reopen the last session (with
their view) and File > Open Project (with the labels the project saved, one Undo away from the work before)."""
from pathlib import Path

import pytest
import shiboken6
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtWidgets import QApplication

from segstudio.core.label_store import LabelStore
from segstudio.gui import session as session_module
from tests.gui.slides.test_slide_window import _drag, pyramid  # noqa: F401


def _open_slide(window, path, monkeypatch):
    monkeypatch.setattr("PySide6.QtWidgets.QFileDialog.getOpenFileNames", lambda *a, **k: ([str(path)], ""))
    window.actions.open.trigger()  # File > Open
    slide_window = window.opening.slide_windows[-1]
    slide_window.resize(1000, 700)
    slide_window.canvas.fit_to_window()
    return slide_window


def _stroke(slide_window, start, end):
    """A brush stroke at overview; returns the slide point in its middle."""
    slide_window.tools["brush"].trigger()
    _drag(slide_window.canvas, [start, (start + end) / 2, end])
    slide_window.doc.wait_painted()
    return slide_window.canvas.mapToScene((start + end) / 2)


def _label(slide_window, point):
    return slide_window.doc.store.read(round(point.y()), round(point.x()), 1, 1)[0, 0]


def _close_slides(window):
    for slide_window in list(window.opening.slide_windows):
        if shiboken6.isValid(slide_window):
            slide_window.close()
    QApplication.processEvents()


def test_open_recent_reopens_a_slide_with_its_labels(make_window, pyramid, monkeypatch):  # noqa: F811
    window = make_window()
    slide_window = _open_slide(window, pyramid, monkeypatch)
    painted = _stroke(slide_window, QPoint(300, 300), QPoint(400, 300))
    slide_window.close()  # saves its labels
    QApplication.processEvents()
    assert not window.opening.slide_windows

    entry = window.session.recent.actions()[0]  # File > Open Recent, newest first
    assert entry.text().replace("&", "") == f"1 {pyramid.name}"
    entry.trigger()
    again = window.opening.find_slide_window(pyramid)
    assert again is not None and _label(again, painted) == 1
    window.session.recent.actions()[0].trigger()  # chosen again while open: the same window, not a second
    assert window.opening.slide_windows == [again]
    _close_slides(window)


def test_the_last_session_reopens_the_slide_with_its_labels_and_view(
        make_window, pyramid, monkeypatch, qtbot):  # noqa: F811
    window = make_window()
    slide_window = _open_slide(window, pyramid, monkeypatch)
    painted = _stroke(slide_window, QPoint(300, 300), QPoint(400, 320))
    slide_window.magnification_actions[10].trigger()
    slide_window.canvas.centerOn(QPointF(5000, 2500))
    zoom, centre = slide_window.view_state()
    window.close()  # quitting: the session is written
    _close_slides(window)

    again = make_window()
    box = again.session.offer_last_session()
    assert box is not None and "1 image(s)" in box.text() and pyramid.name in box.text()
    (reopen,) = [b for b in box.buttons() if b.text() == "Reopen"]
    qtbot.mouseClick(reopen, Qt.MouseButton.LeftButton)
    reopened = again.opening.find_slide_window(pyramid)
    assert reopened is not None and _label(reopened, painted) == 1
    QApplication.processEvents()
    new_zoom, new_centre = reopened.view_state()
    assert new_zoom == pytest.approx(zoom)
    assert abs(new_centre[0] - centre[0]) < 20 and abs(new_centre[1] - centre[1]) < 20
    _close_slides(again)


def _project_then_more_work(make_window, slide, folder, monkeypatch):
    """A slide painted, saved in a project (with a class added), then painted again: (kept, later) points."""
    window = make_window()
    slide_window = _open_slide(window, slide, monkeypatch)
    kept = _stroke(slide_window, QPoint(300, 300), QPoint(400, 300))
    window.editing.classes.add("stroma", (0, 200, 100))  # in the Classes panel
    monkeypatch.setattr(session_module.QFileDialog, "getExistingDirectory", lambda *a, **k: str(folder))
    window.actions.save_project.trigger()  # File > Save Project
    assert window.last_error is None
    assert sorted(p.parent.name for p in (folder / "slides").glob("*/zarr.json")) == [
        "tissue.ome.hand.zarr", "tissue.ome.zarr"]
    later = _stroke(slide_window, QPoint(300, 500), QPoint(400, 500))  # after the save: in the autosave only
    window.close()
    _close_slides(window)
    return kept, later


def test_a_project_keeps_the_slides_labels_and_opening_it_is_one_undo_step(
        make_window, pyramid, tmp_path, monkeypatch):  # noqa: F811
    kept, later = _project_then_more_work(make_window, pyramid, tmp_path / "project", monkeypatch)
    again = make_window()
    again.actions.open_project.trigger()  # File > Open Project
    assert again.last_error is None
    reopened = again.opening.find_slide_window(pyramid)
    assert reopened is not None
    assert "stroma" in [reopened.class_box.itemText(i) for i in range(reopened.class_box.count())]
    assert _label(reopened, kept) == 1 and _label(reopened, later) == 0  # as the project saved it
    reopened.undo_action.trigger()  # the work the slide held before is one Undo away
    assert _label(reopened, kept) == 1 and _label(reopened, later) == 1
    reopened.redo_action.trigger()
    assert _label(reopened, later) == 0
    _close_slides(again)


def test_labels_too_large_to_undo_are_copied_aside_before_a_project_replaces_them(
        make_window, pyramid, tmp_path, monkeypatch):  # noqa: F811
    kept, later = _project_then_more_work(make_window, pyramid, tmp_path / "project", monkeypatch)
    monkeypatch.setattr("segstudio.gui.slides.document.undo_budget_bytes", lambda: 2**20)  # four chunks
    again = make_window()
    again.actions.open_project.trigger()  # File > Open Project
    reopened = again.opening.find_slide_window(pyramid)
    assert _label(reopened, kept) == 1 and _label(reopened, later) == 0
    message = reopened.statusBar().currentMessage()
    assert "kept in" in message
    aside = LabelStore(reopened.doc.slide.height, reopened.doc.slide.width, Path(message.split("kept in ")[1][:-1]))
    assert aside.read(round(later.y()), round(later.x()), 1, 1)[0, 0] == 1  # nothing the user made is lost
    assert reopened.doc.undo_stack.count() == 0
    _close_slides(again)
