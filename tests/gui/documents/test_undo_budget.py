"""Undo keeps its steps under a memory budget: the oldest go first, the user is told once, and what stays
undoes and redoes exactly."""
import numpy as np
import pytest
import tifffile
from PySide6.QtCore import QPointF, QSettings, Qt
from PySide6.QtWidgets import QApplication

from segstudio.gui.settings import UNDO_BUDGET_KEY

STROKE_ROWS = (10, 30, 50, 70, 90)


@pytest.fixture
def doc(window, tmp_path):
    path = tmp_path / "slide.tif"
    tifffile.imwrite(path, np.full((100, 100), 40, np.uint8))
    # Room for about two of the strokes below (each holds about 4 KiB: old and new pixels, hand map).
    QSettings().setValue(UNDO_BUDGET_KEY, 10_000 / 2**20)
    (doc,) = window.open_paths([path])
    QApplication.processEvents()
    window.editing.select_tool("brush")
    window.editing.session.set_brush_radius(6)
    return doc


def stroke(qtbot, window, y):
    viewport = window.canvas.viewport()
    at = [window.canvas.mapFromScene(QPointF(x + 0.5, y + 0.5)) for x in (10, 45, 80)]
    qtbot.mousePress(viewport, Qt.MouseButton.LeftButton, pos=at[0])
    for point in at[1:]:
        qtbot.mouseMove(viewport, point)
    qtbot.mouseRelease(viewport, Qt.MouseButton.LeftButton, pos=at[-1])


def test_oldest_steps_go_first_the_user_is_told_once_and_the_rest_undo_exactly(window, doc, qtbot):
    messages = []
    window.statusBar().messageChanged.connect(messages.append)
    states = [(doc.mask.copy(), doc.hand.copy())]
    for y in STROKE_ROWS:
        stroke(qtbot, window, y)
        states.append((doc.mask.copy(), doc.hand.copy()))
    stack = doc.undo_stack

    assert stack.held_bytes() <= stack.budget_bytes
    kept = stack.count()
    assert 1 <= kept < len(STROKE_ROWS)
    told = [m for m in messages if "undo step" in m]
    assert len(told) == 1 and "slide.tif" in told[0]

    for _ in range(kept):
        window.actions.undo.trigger()
    assert not window.actions.undo.isEnabled()
    # Undo stops at the state the dropped strokes left, pixel for pixel.
    mask, hand = states[len(STROKE_ROWS) - kept]
    np.testing.assert_array_equal(doc.mask, mask)
    np.testing.assert_array_equal(doc.hand, hand)
    for _ in range(kept):
        window.actions.redo.trigger()
    np.testing.assert_array_equal(doc.mask, states[-1][0])
    np.testing.assert_array_equal(doc.hand, states[-1][1])


def test_the_saved_position_survives_trimming(window, doc, qtbot):
    for y in STROKE_ROWS[:-1]:
        stroke(qtbot, window, y)
    doc.undo_stack.setClean()  # what a finished autosave does
    stroke(qtbot, window, STROKE_ROWS[-1])  # over budget: the oldest steps go
    assert doc.undo_stack.count() < len(STROKE_ROWS) and doc.unsaved
    window.actions.undo.trigger()
    assert not doc.unsaved  # back at exactly what the autosave holds
    window.actions.redo.trigger()
    assert doc.unsaved
