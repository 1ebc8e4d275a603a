"""A Fill click that would flood the background asks first; small fills do not; undo restores exactly."""
import numpy as np
import pytest
from PySide6.QtCore import QPointF, Qt, QTimer
from PySide6.QtWidgets import QApplication, QMessageBox

from segstudio.core import edits
from segstudio.gui.editing import tools


@pytest.fixture
def doc(window, dim16_tiff):
    (doc,) = window.open_paths([dim16_tiff])
    QApplication.processEvents()
    nuclei = np.zeros(doc.mask.shape, np.uint8)  # 48 x 64
    nuclei[5:15, 5:15] = 1
    nuclei[20:40, 30:55] = 1
    nuclei[25:35, 38:48] = 0  # a hole inside the second nucleus
    doc.replace_mask(nuclei)
    window.canvas.setFocus()
    window.editing.tool_actions["fill"].trigger()
    window.editing.session.set_active_class(1)
    return doc


def click(qtbot, window, x, y):
    pos = window.canvas.mapFromScene(QPointF(x + 0.5, y + 0.5))
    qtbot.mouseClick(window.canvas.viewport(), Qt.MouseButton.LeftButton, pos=pos)


def answer_question(button_text):
    """Click ``button_text`` in the question once it is shown; returns the texts of the questions seen."""
    seen = []
    tries = iter(range(500))  # gives up after about five seconds: a question that never came fails the test

    def answer():
        box = QApplication.activeModalWidget()
        if not isinstance(box, QMessageBox):
            if next(tries, None) is not None:
                QTimer.singleShot(10, answer)
            return
        seen.append(box.text())
        (button,) = [b for b in box.buttons() if b.text().replace("&", "") == button_text]
        button.click()

    QTimer.singleShot(0, answer)
    return seen


def test_background_fill_asks_and_cancel_changes_nothing(window, doc, qtbot):
    before, hand_before = doc.mask.copy(), doc.hand.copy()
    seen = answer_question("Cancel")
    click(qtbot, window, 2, 40)  # background, which reaches the image border
    assert len(seen) == 1 and "edge of the image" in seen[0]
    np.testing.assert_array_equal(doc.mask, before)
    np.testing.assert_array_equal(doc.hand, hand_before)
    assert doc.undo_stack.count() == 0
    assert "cancelled" in window.statusBar().currentMessage()


def test_background_fill_accepted_fills_and_undo_restores_exactly(window, doc, qtbot):
    doc.hand[0:3, 0:3] = True  # some background painted by hand already
    before, hand_before = doc.mask.copy(), doc.hand.copy()
    seen = answer_question("Fill anyway")
    click(qtbot, window, 2, 40)
    assert len(seen) == 1
    want = before.copy()
    edits.flood_fill(want, 40, 2, 1)
    np.testing.assert_array_equal(doc.mask, want)
    assert doc.undo_stack.count() == 1 and doc.hand[40, 2]
    overlay_alpha = window.canvas.overlay.rendered_rgba()[..., 3]
    assert (overlay_alpha[want == 1] > 0).all()

    window.actions.undo.trigger()
    np.testing.assert_array_equal(doc.mask, before)
    np.testing.assert_array_equal(doc.hand, hand_before)
    np.testing.assert_array_equal(window.canvas.overlay.rendered_rgba()[..., 3] > 0, before > 0)
    window.actions.redo.trigger()
    np.testing.assert_array_equal(doc.mask, want)


def test_fill_over_a_large_share_asks_even_away_from_the_border(window, doc, qtbot):
    ring = np.zeros(doc.mask.shape, np.uint8)
    ring[1:47, 1:63] = 1
    ring[2:46, 2:62] = 0  # an interior of 44 x 60 pixels, most of the image, not touching its border
    doc.replace_mask(ring)
    seen = answer_question("Cancel")
    click(qtbot, window, 30, 20)
    assert len(seen) == 1 and "covers" in seen[0]
    np.testing.assert_array_equal(doc.mask, ring)


def test_small_interior_fill_asks_nothing(window, doc, qtbot, monkeypatch):
    asked = []
    monkeypatch.setattr(tools, "ask_before_large_fill", lambda *args: asked.append(args) or False)
    before = doc.mask.copy()
    click(qtbot, window, 40, 30)  # the hole inside a nucleus
    assert not asked
    want = before.copy()
    want[25:35, 38:48] = 1
    np.testing.assert_array_equal(doc.mask, want)
    window.actions.undo.trigger()
    np.testing.assert_array_equal(doc.mask, before)
