"""Fill, Delete Object and Eyedropper in a slide window, clicked with the mouse at full resolution and at
overview: the touching region of the clicked label changes in full-resolution chunks, bounded to the view,
with one undo step."""
import numpy as np
import pytest
from PySide6.QtCore import QPointF, Qt
from PySide6.QtWidgets import QApplication

from tests.gui.slides.test_slide_window import _close_all, _paint, open_slide, pyramid  # noqa: F401

LEFT = Qt.MouseButton.LeftButton
# A ring of class 1 (the slide is 8192 x 6144): its inside is background enclosed by it.
RING = (2000, 3000, 1600, 2400)  # y0, x0, h, w of its outer edge
WALL = 64


@pytest.fixture
def ringed(window, pyramid, qtbot, monkeypatch):  # noqa: F811
    slide_window = open_slide(window, pyramid, qtbot, monkeypatch)
    doc = slide_window.doc
    y0, x0, h, w = RING
    ring = np.ones((h, w), np.uint8)
    ring[WALL:-WALL, WALL:-WALL] = 0
    doc.store.put(y0, x0, ring)  # labels already there, as a prediction leaves them
    doc.notify_region(y0, x0, h, w)
    yield slide_window
    _close_all(window)


def click_at(qtbot, slide_window, x, y):
    canvas = slide_window.canvas
    qtbot.mouseClick(canvas.viewport(), LEFT, pos=canvas.mapFromScene(QPointF(x, y)))


def choose(slide_window, class_id):
    box = slide_window.class_box
    box.setCurrentIndex(box.findData(class_id))
    assert box.currentData() == class_id


def test_fill_at_overview_fills_the_inside_of_the_ring_at_full_resolution_and_undoes(ringed, qtbot):
    doc, canvas = ringed.doc, ringed.canvas
    y0, x0, h, w = RING
    assert doc.store.best_level(1.0 / canvas.zoom()) > 0  # fitted: the slide's overview
    choose(ringed, 1)
    qtbot.keyClick(canvas, Qt.Key.Key_G)
    assert ringed.tools["fill"].isChecked()
    _paint(ringed)
    click_at(qtbot, ringed, x0 + w / 2, y0 + h / 2)
    doc.wait_painted()
    inside = doc.store.read(y0 + WALL, x0 + WALL, h - 2 * WALL, w - 2 * WALL)
    assert (inside == 1).all()  # every full-resolution pixel inside, however coarse the click
    assert not doc.store.read(0, 0, y0, 8192).any()  # outside the ring (background too): untouched
    assert not doc.store.read(y0 + h, 0, 6144 - y0 - h, 8192).any()
    assert doc.hand.read(y0 + h // 2, x0 + w // 2, 1, 1)[0, 0] == 1  # a correction: kept by the next Predict
    qtbot.keyClick(ringed, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert not doc.store.read(y0 + WALL, x0 + WALL, h - 2 * WALL, w - 2 * WALL).any()


def test_delete_object_at_full_resolution_removes_the_ring_but_only_within_the_view(ringed, qtbot):
    doc, canvas = ringed.doc, ringed.canvas
    y0, x0, h, w = RING
    canvas.set_zoom(1.0)
    canvas.centerOn(QPointF(x0 + 100, y0 + 100))  # the ring's top-left corner; most of it is out of view
    QApplication.processEvents()
    assert doc.store.best_level(1.0 / canvas.zoom()) == 0
    qtbot.keyClick(canvas, Qt.Key.Key_D)
    click_at(qtbot, ringed, x0 + WALL / 2, y0 + 200)  # on the left wall
    vx, vy, vw, vh = canvas.visible_image_rect()
    top_wall = doc.store.read(y0, x0, WALL, w)
    in_view = top_wall[:, : vx + vw - x0]
    assert not in_view.any()  # deleted where the view shows it
    assert (top_wall[:, vx + vw - x0 + 1:] == 1).all()  # and left alone past the view's edge
    assert "edge of the view" in ringed.statusBar().currentMessage()
    qtbot.keyClick(ringed, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert (doc.store.read(y0, x0, WALL, w) == 1).all()


def test_delete_object_on_background_says_what_to_click_and_changes_nothing(ringed, qtbot):
    doc, canvas = ringed.doc, ringed.canvas
    qtbot.keyClick(canvas, Qt.Key.Key_D)
    _paint(ringed)
    before = doc.undo_stack.count()
    click_at(qtbot, ringed, 500, 500)
    assert doc.undo_stack.count() == before
    assert "background" in ringed.statusBar().currentMessage()


def test_the_eyedropper_chooses_the_class_under_the_cursor(ringed, qtbot):
    ringed.class_box.setCurrentIndex(-1)
    qtbot.keyClick(ringed.canvas, Qt.Key.Key_I)
    _paint(ringed)
    y0, x0, _h, _w = RING
    click_at(qtbot, ringed, x0 + WALL / 2, y0 + WALL / 2)
    assert ringed.class_box.currentData() == 1
    click_at(qtbot, ringed, 500, 500)
    assert "background" in ringed.statusBar().currentMessage()


def test_a_fill_that_would_write_too_much_of_the_slide_says_so_and_writes_nothing(ringed, qtbot, monkeypatch):
    # At overview the background is most of the slide: every full-resolution pixel of it is far too much.
    monkeypatch.setattr("segstudio.gui.slides.fill.FILL_MAX_CHUNKS", 50)
    doc = ringed.doc
    choose(ringed, 1)
    qtbot.keyClick(ringed.canvas, Qt.Key.Key_G)
    _paint(ringed)
    before = doc.undo_stack.count()
    click_at(qtbot, ringed, 500, 500)  # the background outside the ring
    doc.wait_painted()
    assert doc.undo_stack.count() == before
    assert not doc.store.read(0, 0, 1000, 1000).any()
    message = ringed.statusBar().currentMessage()
    assert "Zoom in" in message and "tiles of labels" in message
    # The inside of the ring is small enough.
    y0, x0, h, w = RING
    click_at(qtbot, ringed, x0 + w / 2, y0 + h / 2)
    doc.wait_painted()
    assert (doc.store.read(y0 + WALL, x0 + WALL, h - 2 * WALL, w - 2 * WALL) == 1).all()
