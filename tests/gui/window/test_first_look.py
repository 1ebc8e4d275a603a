"""What a new user sees first: the empty window's hint, the status bar read-out, the shortcut list and the
nucleus colour, each through the user's own gestures."""
import numpy as np
import pytest
import tifffile
from PySide6.QtCore import QPointF, Qt
from PySide6.QtWidgets import QApplication, QDialog, QLabel

from segstudio.core import edits
from segstudio.core.labels import NUCLEUS_COLOR


def view_point(window, x, y):
    return window.canvas.mapFromScene(QPointF(x + 0.5, y + 0.5))


# --- the empty window -----------------------------------------------------------------------------------
def test_the_empty_window_says_where_images_come_from_until_one_is_open(window, dim16_tiff):
    hint = window.canvas.findChild(QLabel, "canvasPlaceholder")
    assert hint.isVisible()
    text = hint.text()
    assert "Drop images here" in text and "File &gt; Open Images" in text and "Open Sample" in text
    centre = hint.mapTo(window.canvas.viewport(), hint.rect().center())
    assert abs(centre.x() - window.canvas.viewport().width() / 2) < 20
    window.open_paths([dim16_tiff])
    assert not hint.isVisible()
    window.actions.close_image.trigger()
    assert hint.isVisible()


def test_files_dropped_on_the_hint_still_open(window, dim16_tiff, qtbot):
    from PySide6.QtCore import QMimeData, QUrl
    from PySide6.QtGui import QDropEvent

    hint = window.canvas.findChild(QLabel, "canvasPlaceholder")
    assert hint.testAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
    data = QMimeData()
    data.setUrls([QUrl.fromLocalFile(str(dim16_tiff))])
    where = window.canvas.viewport().mapTo(window, hint.geometry().center())
    drop = QDropEvent(QPointF(where), Qt.DropAction.CopyAction, data, Qt.MouseButton.NoButton,
                      Qt.KeyboardModifier.NoModifier)
    window.dropEvent(drop)
    assert window.current is not None and not hint.isVisible()


# --- status bar --------------------------------------------------------------------------------------------
def test_the_label_read_out_follows_a_fill_under_a_still_cursor(window, dim16_tiff, qtbot):
    (doc,) = window.open_paths([dim16_tiff])
    QApplication.processEvents()
    ring = np.zeros(doc.mask.shape, np.uint8)
    ring[10:30, 10:30] = 1
    ring[14:26, 14:26] = 0
    doc.replace_mask(ring)
    viewport = window.canvas.viewport()
    label = window.status.position_label
    qtbot.mouseMove(viewport, view_point(window, 20, 20))
    assert label.isVisible() and label.text().endswith("label background")
    window.canvas.setFocus()
    qtbot.keyClick(window.canvas, Qt.Key.Key_G)  # Fill
    qtbot.mouseClick(viewport, Qt.MouseButton.LeftButton, pos=view_point(window, 20, 20))
    assert doc.mask[20, 20] == 1
    assert label.text().endswith("label nucleus")
    window.actions.undo.trigger()
    assert label.text().endswith("label background")


def test_an_image_with_one_channel_is_described_in_the_singular(window, dim16_tiff):
    window.open_paths([dim16_tiff])
    message = window.statusBar().currentMessage()
    assert "1 channel," in message and "channel(s)" not in message


def test_the_restored_work_message_fits_in_the_status_bar(make_window, tmp_path, qtbot):
    """Reopening an image with autosaved work says so, in full, in a 1366-pixel-wide window."""
    path = tmp_path / "a slide with a fairly long descriptive file name, stained.tif"
    tifffile.imwrite(path, np.zeros((40, 50), np.uint16))
    first = make_window((1366, 740))
    (doc,) = first.open_paths([path])
    first.editing.session.commit(doc, edits.paint_disk(doc.mask, 10, 10, 3, 1, hand=doc.hand), "dot")
    first.close()
    again = make_window((1366, 740))
    again.open_paths([path])
    bar = again.statusBar()
    qtbot.waitUntil(lambda: "restored your work" in bar.currentMessage().lower())
    message = bar.currentMessage()
    assert message.count(path.name) == 1
    assert bar.toolTip() == message  # a message that does not fit is still there to read in full
    permanent = [w for w in (again.status.position_label, again.status.zoom_label, again.status.device_label)
                 if w.isVisible()]
    room = min(w.geometry().left() for w in permanent) - 12
    assert bar.fontMetrics().horizontalAdvance(message) <= room


# --- Help > Keyboard Shortcuts --------------------------------------------------------------------------
@pytest.fixture
def shortcuts_text(window, dim16_tiff, qtbot):
    (doc,) = window.open_paths([dim16_tiff])
    QApplication.processEvents()
    qtbot.mouseClick(window.canvas.viewport(), Qt.MouseButton.LeftButton, pos=view_point(window, 5, 5))
    assert window.actions.undo.text().replace("&", "") != "Undo"  # "Undo Brush stroke" in the menu
    window.actions.shortcuts.trigger()
    dialog = window.findChild(QDialog, "shortcutsDialog")
    assert dialog is not None and dialog.isVisible()
    text = dialog.findChild(QLabel, "shortcutsText").text()
    screen = window.screen().availableGeometry()
    assert dialog.height() <= screen.height() and dialog.width() <= screen.width()
    yield text
    dialog.close()


def test_shortcut_list_is_grouped_by_menu_with_plain_names(shortcuts_text):
    text = shortcuts_text
    headings = [part.split("</h4>")[0] for part in text.split("<h4")[1:]]
    titles = [h.split(">", 1)[1] for h in headings]
    assert titles[:4] == ["File", "Edit", "Edit &gt; Tools", "View"]
    assert "Model" in titles and "Help" in titles and "On the image" in titles
    assert "<td>Undo</td>" in text and "<td>Redo</td>" in text
    assert "Undo Brush" not in text
    assert text.count("Class 1 in the List") == 0 and "Select a class by its place in the list" in text


def test_shortcut_list_names_the_gestures_that_are_not_menu_commands(shortcuts_text):
    text = shortcuts_text
    for gesture in ("Ctrl+click", "Right drag", "F2", "Enter", "Backspace", "Cancel a running Predict",
                    "Mouse wheel", "Space + drag", "Look Inside the Network"):
        assert gesture in text, gesture


# --- colours --------------------------------------------------------------------------------------------
def test_the_nucleus_colour_stays_the_same_through_the_first_predict(window, dim16_tiff, qtbot):
    from segstudio.models.library import ModelLibrary

    assert window.prediction.panel.model_id() == "nuclei-unet/v1"  # the bundled model is the default
    _, meta = ModelLibrary().load("nuclei-unet/v1")
    model_colour = next(tuple(c["color"]) for c in meta.classes if c["name"] == "nucleus")
    assert model_colour == NUCLEUS_COLOR
    window.open_paths([dim16_tiff])
    table = window.editing.classes.table
    assert table.get(1).color == NUCLEUS_COLOR
    before = window.canvas.overlay._lut.copy() if window.canvas.overlay._lut is not None else None
    with qtbot.waitSignal(window.model_host.finished, timeout=120_000):
        window.actions.predict.trigger()
    assert window.editing.classes.table.get(1).color == NUCLEUS_COLOR
    if before is not None:
        np.testing.assert_array_equal(window.canvas.overlay._lut[:2], before[:2])


def test_a_class_added_with_the_add_button_does_not_look_like_the_nucleus(window, qtbot):
    from segstudio.core.labels import color_difference

    qtbot.mouseClick(window.editing.classes_panel.add_button, Qt.MouseButton.LeftButton)
    table = window.editing.classes.table
    added = table.classes[-1]
    assert added.id == 2
    assert color_difference(added.color, table.get(1).color) > 100


def test_on_a_laptop_screen_the_window_fits_and_the_extra_panels_wait_until_used(make_window, dim16_tiff, qtbot):
    """At 1366 x 768 after a Predict nothing pushes the window past the screen (the status bar stays in
    sight); the Objects table opens with Object View and the Review panel, a tab beside Classes, comes to
    the front with Next Region."""
    window = make_window((1366, 740))
    window.open_paths([dim16_tiff])
    with qtbot.waitSignal(window.model_host.finished, timeout=120_000):
        window.actions.predict.trigger()
    QApplication.processEvents()
    assert window.minimumSizeHint().height() <= 720 and window.height() <= 740
    assert window.objects.dock.isHidden()
    assert window.review.dock.isVisible() is False or window.tabifiedDockWidgets(window.review.dock)
    window.review.next_region.trigger()
    assert window.review.dock.isVisible() and window.editing.classes_dock.visibleRegion().isEmpty()
    window.objects.object_view.trigger()
    assert window.objects.dock.isVisible()
    assert window.minimumSizeHint().height() <= 720
