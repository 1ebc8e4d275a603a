"""The installed Qt binding keeps Python's count of references to None.

PySide6 6.12.0 drops one reference to None on each call of a QGraphicsItem method that returns nothing
(update, setVisible, prepareGeometryChange...). The canvas makes such calls on every brush segment, every
tile that arrives and every repaint, so on Python 3.11 (where None is not immortal) a long labelling
session ended in "Fatal Python error: none_dealloc". pyproject.toml keeps PySide6 below 6.12; this test
fails on a binding with that fault, whatever its version.
"""
import sys

import numpy as np
import pytest
from PySide6.QtCore import QRectF
from PySide6.QtWidgets import QApplication

pytestmark = pytest.mark.skipif(sys.version_info >= (3, 12), reason="None is immortal from Python 3.12")

CALLS = 3000


def _lost(call) -> int:
    before = sys.getrefcount(None)
    for _ in range(CALLS):
        call()
    return before - sys.getrefcount(None)


def test_the_calls_the_canvas_makes_per_stroke_and_per_frame_keep_none_alive(qtbot):
    from segstudio.core.imageio import DisplayPicture
    from segstudio.gui.canvas.view import ImageCanvas

    canvas = ImageCanvas()
    qtbot.addWidget(canvas)
    canvas.resize(400, 300)
    canvas.show()
    mask = np.zeros((128, 128), np.uint8)
    canvas.set_image(DisplayPicture(np.zeros((128, 128), np.uint8)))
    canvas.set_mask(mask, np.array([[0, 0, 0, 0], [255, 0, 0, 120]], np.uint8))
    QApplication.processEvents()
    overlay = canvas.overlay
    assert _lost(lambda: overlay.update(QRectF(1, 1, 4, 4))) < CALLS // 10
    assert _lost(lambda: overlay.setVisible(True)) < CALLS // 10
    assert _lost(lambda: overlay.refresh(10, 10, 8, 8)) < CALLS // 10
    assert _lost(lambda: canvas.viewport().repaint()) < CALLS // 10
