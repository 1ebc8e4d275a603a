"""Work done off the GUI thread on a slide: what an overview stroke paints reaches disk while it is still
being painted, and a polygon drawn zoomed out is painted in the background like a brush stroke."""
import threading

import numpy as np
from PySide6.QtCore import QPoint, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from segstudio.core.label_store import LabelStore
from segstudio.gui.slides.document import FLUSH_MS, labels_folder
from tests.gui.slides.test_slide_window import _paint, pyramid, slide_window  # noqa: F401


def _on_disk(doc):
    folder = labels_folder(doc.slide.path)
    return (LabelStore(doc.slide.height, doc.slide.width, folder, pyramid=False),
            LabelStore(doc.slide.height, doc.slide.width, folder.with_name(folder.stem + ".hand.zarr"), pyramid=False))


def _at(store, point):
    return store.read(round(point.y()), round(point.x()), 1, 1)[0, 0]


def _hold_painting(doc):
    gate = threading.Event()
    doc.jobs.submit(lambda: gate.wait(10))
    return gate


def test_an_overview_strokes_chunks_reach_disk_while_it_still_paints_and_the_rest_as_its_painting_ends(
        slide_window, qtbot, monkeypatch):  # noqa: F811
    # While painting goes on, a save takes the chunks it left alone for QUIET_S; no clock here: all of them.
    monkeypatch.setattr("segstudio.gui.slides.document.QUIET_S", 0.0)
    canvas, doc = slide_window.canvas, slide_window.doc
    viewport = canvas.viewport()
    slide_window.tools["brush"].trigger()
    _paint(slide_window)
    left = Qt.MouseButton.LeftButton
    QTest.mousePress(viewport, left, Qt.KeyboardModifier.NoModifier, QPoint(200, 300))
    QTest.mouseMove(viewport, QPoint(260, 300))
    doc.jobs.wait()  # the stroke's first part is painted at full resolution...
    first = canvas.mapToScene(QPoint(230, 300))
    gate = _hold_painting(doc)  # ...and the rest takes its time
    try:
        for x in (320, 380, 440):
            QTest.mouseMove(viewport, QPoint(x, 300))
        QTest.mouseRelease(viewport, left, Qt.KeyboardModifier.NoModifier, QPoint(440, 300))
        last = canvas.mapToScene(QPoint(410, 300))
        assert doc.autosave_timer.isActive()  # the edits armed the autosave cycle
        doc.autosave_timer.timeout.emit()  # the cycle comes round while the stroke still paints
        assert doc.saver.wait(10), "the save waited for the painting"
        labels, hand = _on_disk(doc)
        assert _at(labels, first) == 1 and _at(hand, first) == 1  # what is painted is on disk
        assert _at(doc.store, last) == 0  # the rest is not painted yet
        QApplication.processEvents()
        assert slide_window.isWindowModified()  # the disk does not hold the whole stroke yet
        assert doc.autosave_timer.isActive() and doc.autosave_timer.interval() <= FLUSH_MS  # keeping up
        doc.autosave_timer.stop()  # from here only the painting's end may start a save
    finally:
        gate.set()
    doc.jobs.wait()
    QApplication.processEvents()  # the painting's end is told: the stroke's last chunks are saved at once
    assert doc.saver.wait(10)
    QApplication.processEvents()
    labels, hand = _on_disk(doc)
    assert _at(labels, last) == 1 and _at(hand, last) == 1
    for cy, cx in list(doc.store.full.chunks):  # every chunk as it is in memory
        box = (cy * labels.chunk, cx * labels.chunk, labels.chunk, labels.chunk)
        assert np.array_equal(labels.read(*box), doc.store.read(*box))
    assert not slide_window.isWindowModified() and not doc.store.unsaved and not doc.hand.unsaved


def _polygon(canvas, corners):
    viewport = canvas.viewport()
    for corner in corners + corners[:1]:  # a click on the first corner closes it
        QTest.mouseClick(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, corner)


def test_a_polygon_at_overview_shows_at_once_is_painted_in_the_background_and_undoes_exactly(
        slide_window, qtbot):  # noqa: F811
    canvas, doc, store = slide_window.canvas, slide_window.doc, slide_window.doc.store
    _paint(slide_window)
    shown = store.best_level(1 / canvas.zoom())
    ds = store.downsample(shown)
    assert shown > 0
    before = [store.read(0, 0, grid.height, grid.width, level=k).copy() for k, grid in enumerate(store.levels)]
    painted_on, paint = [], store.paint
    store.paint = lambda *a, **k: (painted_on.append(threading.current_thread()), paint(*a, **k))[1]
    qtbot.keyClick(canvas, Qt.Key.Key_P)
    inside = canvas.mapToScene(QPoint(400, 350))
    gate = _hold_painting(doc)
    try:
        _polygon(canvas, [QPoint(300, 300), QPoint(500, 300), QPoint(500, 400), QPoint(300, 400)])
        # The window did not wait: the screen's level shows it, the full-resolution pixels are to come.
        assert store.read(round(inside.y() / ds), round(inside.x() / ds), 1, 1, level=shown)[0, 0] == 1
        assert _at(store, inside) == 0
        assert doc.undo_stack.count() == 1
    finally:
        gate.set()
    doc.wait_painted()
    assert _at(store, inside) == 1
    corner = canvas.mapToScene(QPoint(300, 300))
    assert _at(store, corner.__class__(corner.x() + 40, corner.y() + 40)) == 1
    assert painted_on and threading.main_thread() not in painted_on
    slide_window.undo_action.trigger()
    after = [store.read(0, 0, grid.height, grid.width, level=k) for k, grid in enumerate(store.levels)]
    assert all(np.array_equal(x, y) for x, y in zip(before, after))  # every level, every pixel
    slide_window.redo_action.trigger()
    assert _at(store, inside) == 1


def test_a_polygon_at_full_resolution_is_still_one_undo_step_painted_at_once(slide_window, qtbot):  # noqa: F811
    canvas, doc = slide_window.canvas, slide_window.doc
    qtbot.keyClick(canvas, Qt.Key.Key_4)
    qtbot.keyClick(canvas, Qt.Key.Key_P)
    _polygon(canvas, [QPoint(300, 300), QPoint(340, 300), QPoint(340, 340)])
    inside = canvas.mapToScene(QPoint(330, 310))
    assert _at(doc.store, inside) == 1 and doc.undo_stack.count() == 1
    slide_window.undo_action.trigger()
    assert _at(doc.store, inside) == 0


def test_painting_on_does_not_put_off_a_save_that_is_due(slide_window, qtbot, monkeypatch):  # noqa: F811
    canvas, doc = slide_window.canvas, slide_window.doc
    slide_window.magnification_actions[40].trigger()
    slide_window.tools["brush"].trigger()
    left, none = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    QTest.mousePress(canvas.viewport(), left, none, QPoint(300, 300))
    assert doc.autosave_timer.isActive()
    timer = doc.autosave_timer
    timer.start(1000)  # the save is due in a second...
    restarts = []  # (was a save pending, ms it had left, ms asked for) at each restart of the timer
    real_start = timer.start
    monkeypatch.setattr(timer, "start", lambda ms: restarts.append(
        (timer.isActive(), timer.remainingTime(), ms)) or real_start(ms), raising=False)
    for x in range(310, 600, 10):  # ...and the user keeps painting: it stays due, not two seconds on
        QTest.mouseMove(canvas.viewport(), QPoint(x, 300))
    QTest.mouseRelease(canvas.viewport(), left, none, QPoint(600, 300))
    # Counted, not timed: no restart while a save was pending asked for longer than it had left.
    assert all(not pending or ms <= left for pending, left, ms in restarts), restarts
