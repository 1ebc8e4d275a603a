"""Choosing another page of a multi-page TIFF keeps each page's mask, hand map and undo history, in the window
and in the autosave: nothing painted is lost by a view change."""
import numpy as np
import pytest
import tifffile
from PySide6.QtCore import QPointF, Qt, QTimer
from PySide6.QtWidgets import QApplication, QDialogButtonBox

from segstudio.gui.canvas.channels import ChannelsDialog

LEFT = Qt.MouseButton.LeftButton


@pytest.fixture
def stack_tiff(tmp_path):
    stack = np.full((4, 40, 50), 200, np.uint16)
    stack[:, 10:30, 15:35] = 3000
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, stack, photometric="minisblack", metadata={"axes": "ZYX"})
    return path


def view_point(window, x, y):
    return window.canvas.mapFromScene(QPointF(x + 0.5, y + 0.5))


def paint_stroke(qtbot, window, pixels):
    QApplication.processEvents()  # the view settles its scroll position first
    viewport = window.canvas.viewport()
    qtbot.mousePress(viewport, LEFT, pos=view_point(window, *pixels[0]))
    for x, y in pixels[1:]:
        qtbot.mouseMove(viewport, view_point(window, x, y))
    qtbot.mouseRelease(viewport, LEFT, pos=view_point(window, *pixels[-1]))


def choose_page(qtbot, window, page_number):
    """View > Channels and Page, the page typed into the dialog's page box, OK clicked."""
    seen = []

    def answer():
        dialog = QApplication.activeModalWidget()
        if not isinstance(dialog, ChannelsDialog):
            QTimer.singleShot(20, answer)
            return
        seen.append(dialog)
        dialog.page.setValue(page_number)
        qtbot.mouseClick(dialog.buttons.button(QDialogButtonBox.StandardButton.Ok), LEFT)

    QTimer.singleShot(0, answer)
    window.actions.channels.trigger()
    assert seen, "the Channels and Page dialog did not open"


def test_switching_page_and_back_keeps_the_stroke_and_its_undo(window, stack_tiff, qtbot):
    (first,) = window.open_paths([stack_tiff])
    paint_stroke(qtbot, window, [(20, 20), (24, 20), (28, 20)])
    painted = first.mask.copy()
    assert painted[20, 20:29].all() and first.hand[20, 24]

    choose_page(qtbot, window, 2)
    second = window.current
    assert second.image.meta.page == 1 and not second.mask.any()
    assert len(window.documents) == 1  # one file, one entry in the image list
    assert not np.array_equal(window.canvas.overlay.mask, painted)

    choose_page(qtbot, window, 1)
    assert window.current is first and window.current.image.meta.page == 0
    np.testing.assert_array_equal(window.current.mask, painted)
    np.testing.assert_array_equal(window.canvas.overlay.mask, painted)
    assert window.actions.undo.isEnabled()
    window.actions.undo.trigger()
    assert not window.current.mask.any() and not window.current.hand.any()
    assert not window.canvas.overlay.mask.any()
    window.actions.redo.trigger()
    np.testing.assert_array_equal(window.current.mask, painted)


def test_each_page_keeps_its_own_mask_after_quitting_and_reopening(make_window, stack_tiff, qtbot):
    window = make_window()
    window.open_paths([stack_tiff])
    paint_stroke(qtbot, window, [(20, 20), (22, 20)])
    first = window.current.mask.copy()
    choose_page(qtbot, window, 3)
    paint_stroke(qtbot, window, [(30, 12), (30, 16)])
    third = window.current.mask.copy()
    assert not np.array_equal(first, third)
    window.close()  # saves both pages, the hidden first one included

    again = make_window()
    (reopened,) = again.open_paths([stack_tiff])
    np.testing.assert_array_equal(reopened.mask, first)
    choose_page(qtbot, again, 3)
    np.testing.assert_array_equal(again.current.mask, third)
    choose_page(qtbot, again, 2)
    assert not again.current.mask.any()


def test_closing_the_image_lets_go_of_its_other_pages(window, stack_tiff, qtbot):
    window.open_paths([stack_tiff])
    choose_page(qtbot, window, 2)
    assert len(window.all_documents()) == 2
    window.actions.close_image.trigger()
    assert window.documents == [] and window.all_documents() == []
