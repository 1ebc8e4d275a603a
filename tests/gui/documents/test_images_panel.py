"""The image list: every open image with a thumbnail and its status; clicking or PgUp/PgDown switches."""
import numpy as np
import pytest
import tifffile
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from segstudio.core import edits
from segstudio.core.document import ImageStatus


@pytest.fixture
def folder_docs(window, tmp_path):
    folder = tmp_path / "slides"
    folder.mkdir()
    for i in range(3):
        image = np.zeros((30 + 10 * i, 40), np.uint8)
        image[5:15, 5 + i * 5:20 + i * 5] = 200
        tifffile.imwrite(folder / f"slide{i}.tif", image)
    docs = window.open_paths([folder])
    QApplication.processEvents()
    return docs


def item_texts(window):
    panel_list = window.editing.images_panel.list
    return [panel_list.item(i).text() for i in range(panel_list.count())]


def test_lists_each_open_image_with_thumbnail_and_status(window, folder_docs):
    texts = item_texts(window)
    assert [t.splitlines()[0] for t in texts] == ["slide0.tif", "slide1.tif", "slide2.tif"]
    assert all(t.splitlines()[1] == "new" for t in texts)
    panel_list = window.editing.images_panel.list
    icon = panel_list.item(2).icon().pixmap(48, 48).toImage()
    assert not icon.isNull()
    # The 40 x 50 image scaled into 48 x 48: its bright block (rows 5-15, columns 15-30) shows up.
    assert brightness(icon, 5 + 22, 10) > 150 and brightness(icon, 5 + 5, 40) < 50
    assert panel_list.currentRow() == 0


def brightness(image, x, y):
    return image.pixelColor(x, y).value()


def test_status_follows_edits_predictions_and_autosave(window, folder_docs):
    first, second, _ = folder_docs
    session = window.editing.session
    session.commit(first, edits.paint_disk(first.mask, 10, 10, 3, 1, hand=first.hand), "dot")
    assert item_texts(window)[0].splitlines()[1] == "edited — unsaved"
    second.set_status(ImageStatus.PREDICTED)
    assert item_texts(window)[1].splitlines()[1] == "predicted"
    window.editing.autosave.save_now(first)
    assert item_texts(window)[0].splitlines()[1] == "edited"


def test_clicking_and_page_keys_switch_images_keeping_each_mask(window, folder_docs, qtbot):
    first, second, third = folder_docs
    session = window.editing.session
    session.commit(first, edits.paint_disk(first.mask, 10, 10, 3, 1, hand=first.hand), "dot")
    first_mask = first.mask.copy()

    panel_list = window.editing.images_panel.list
    rect = panel_list.visualItemRect(panel_list.item(2))
    qtbot.mouseClick(panel_list.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert window.current is third
    assert window.canvas.overlay.mask is third.mask

    window.canvas.setFocus()
    qtbot.keyClick(window.canvas, Qt.Key.Key_PageDown)
    assert window.current is first and panel_list.currentRow() == 0
    qtbot.keyClick(window.canvas, Qt.Key.Key_PageDown)
    assert window.current is second and panel_list.currentRow() == 1
    qtbot.keyClick(window.canvas, Qt.Key.Key_PageUp)
    assert window.current is first
    np.testing.assert_array_equal(first.mask, first_mask)
    assert window.actions.undo.isEnabled()


def test_closing_an_image_removes_it_from_the_list(window, folder_docs):
    window.set_current(folder_docs[1])
    window.actions.close_image.trigger()
    assert [t.splitlines()[0] for t in item_texts(window)] == ["slide0.tif", "slide2.tif"]
    assert window.editing.images_panel.list.currentItem().text().startswith(window.current.title)


def test_the_images_dock_shows_at_least_four_rows_on_a_laptop_screen(make_window, tmp_path):
    """At 1366 x 768 the right-hand column is shared by four docks; the image list still shows four images."""
    window = make_window((1366, 740))
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(6):
        tifffile.imwrite(folder / f"s{i}.tif", np.full((20, 20), i * 20, np.uint8))
    window.open_paths([folder])
    QApplication.processEvents()
    panel_list = window.editing.images_panel.list
    row = panel_list.visualItemRect(panel_list.item(0)).height()
    assert row >= 48
    assert panel_list.viewport().height() >= 4 * row
    assert window.editing.images_dock.isVisible() and window.editing.classes_dock.isVisible()
