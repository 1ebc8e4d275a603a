"""Two windows on one image: the second opens it read-only and is told, so no stroke made in either window is
saved over by the other; once the first window lets go, the second takes the image over with its work."""
import numpy as np
import pytest
from PySide6.QtCore import QPointF, Qt
from PySide6.QtWidgets import QApplication, QMessageBox

from segstudio.core.autosave import AutosaveStore
from tests.gui.documents.test_autosave import new_window as autosave_window

LEFT = Qt.MouseButton.LeftButton


def new_window(qtbot):
    win = autosave_window(qtbot)
    win.editing.autosave.delay_ms = 20  # tests wait for the condition, not for the user's few seconds
    return win


def open_image(window, path):
    (doc,) = window.open_paths([path])
    QApplication.processEvents()  # the view settles its scroll position before pixels map to the screen
    return doc


def drag(qtbot, window, pixels):
    viewport = window.canvas.viewport()

    def at(x, y):
        return window.canvas.mapFromScene(QPointF(x + 0.5, y + 0.5))

    qtbot.mousePress(viewport, LEFT, pos=at(*pixels[0]))
    for x, y in pixels[1:]:
        qtbot.mouseMove(viewport, at(x, y))
    qtbot.mouseRelease(viewport, LEFT, pos=at(*pixels[-1]))


def close_boxes(window):
    for box in window.findChildren(QMessageBox):
        box.close()


@pytest.fixture
def first(qtbot, dim16_tiff):
    window = new_window(qtbot)
    window.editing.select_tool("brush")
    return window, open_image(window, dim16_tiff)


def test_the_second_window_opens_the_image_read_only_and_saves_over_nothing(first, qtbot, dim16_tiff):
    window_a, doc_a = first
    drag(qtbot, window_a, [(10, 10), (20, 10)])
    qtbot.waitUntil(lambda: not doc_a.unsaved)

    window_b = new_window(qtbot)
    window_b.editing.select_tool("brush")
    df = dim16_tiff
    doc_b = open_image(window_b, df)
    assert doc_b.read_only is not None
    assert "another segstudio window" in window_b.last_error and "read-only" in window_b.last_error
    np.testing.assert_array_equal(doc_b.mask, doc_a.mask)  # it shows the work saved there
    assert "read-only" in window_b.editing.images_panel.item_for(doc_b).text()
    close_boxes(window_b)

    before = doc_b.mask.copy()
    drag(qtbot, window_b, [(40, 30), (50, 30)])
    np.testing.assert_array_equal(doc_b.mask, before)  # the stroke is refused, and the user hears why
    assert "read-only" in window_b.statusBar().currentMessage()
    window_b.actions.predict.trigger()
    assert not window_b.model_host.busy("predict")

    drag(qtbot, window_a, [(10, 40), (20, 40)])  # work goes on in the first window
    qtbot.waitUntil(lambda: not doc_a.unsaved)
    window_b.close()  # quitting the read-only window writes nothing over it
    assert not window_b.isVisible()
    np.testing.assert_array_equal(AutosaveStore().load(df).mask, doc_a.mask)
    assert doc_a.mask[40, 15] and doc_a.mask[10, 15]


def test_once_the_first_window_closes_the_second_takes_the_image_over_with_its_work(first, qtbot, dim16_tiff):
    window_a, doc_a = first
    window_b = new_window(qtbot)
    window_b.editing.select_tool("brush")
    doc_b = open_image(window_b, dim16_tiff)
    close_boxes(window_b)
    assert doc_b.read_only is not None

    drag(qtbot, window_a, [(10, 10), (20, 10)])
    window_a.close()  # saves its last strokes and lets go of the image
    assert not window_a.isVisible()
    work_of_a = AutosaveStore().load(dim16_tiff).mask.copy()
    assert work_of_a[10, 15]

    drag(qtbot, window_b, [(40, 30), (50, 30)])  # the first edit takes over: A's work comes in first
    assert doc_b.read_only is None
    assert "editable" in window_b.statusBar().currentMessage()
    assert doc_b.mask[30, 45] and doc_b.mask[10, 15]
    np.testing.assert_array_equal(doc_b.mask[:20], work_of_a[:20])
    qtbot.waitUntil(lambda: not doc_b.unsaved)
    saved = AutosaveStore().load(dim16_tiff).mask
    assert saved[30, 45] and saved[10, 15]  # both windows' strokes kept


def test_closing_the_image_lets_another_window_edit_it(first, qtbot, dim16_tiff):
    window_a, doc_a = first
    drag(qtbot, window_a, [(10, 10), (20, 10)])
    window_a.actions.close_image.trigger()
    qtbot.waitUntil(lambda: not window_a.editing.autosave.store.holds_image(dim16_tiff))
    window_b = new_window(qtbot)
    doc_b = open_image(window_b, dim16_tiff)
    assert doc_b.read_only is None and doc_b.mask[10, 15]
