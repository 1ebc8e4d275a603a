"""Opening big images: read off the GUI thread with Cancel, shown from their own pixels, the mask drawn
from its own buffer in the right colours, and switching images rebuilding nothing."""
import threading
import time

import numpy as np
import pytest
import tifffile
from PySide6.QtCore import QPointF, QRectF, Qt, QTimer
from PySide6.QtGui import QImage, QPainter
from PySide6.QtWidgets import QApplication, QProgressDialog, QPushButton, QStyleOptionGraphicsItem

from segstudio.core.imageio import to_display_rgb
from segstudio.gui import opening


@pytest.fixture
def grey8(tmp_path):
    rng = np.random.default_rng(3)
    pixels = rng.integers(20, 60, (60, 80), dtype=np.uint8)
    pixels[10:30, 20:50] = 200
    path = tmp_path / "grey8.tif"
    tifffile.imwrite(path, pixels)
    return path, pixels


def open_from_menu(window, monkeypatch, *paths):
    """File > Open, with the file dialog answered."""
    monkeypatch.setattr(opening.QFileDialog, "getOpenFileNames",
                        lambda *a, **k: ([str(p) for p in paths], ""))
    window.actions.open.trigger()


def shares(image: QImage, array: np.ndarray) -> bool:
    """Whether the QImage draws from the numpy array's own memory."""
    bits = np.frombuffer(image.constBits(), np.uint8, count=image.sizeInBytes())
    return np.shares_memory(bits, array)


def render_overlay(window) -> np.ndarray:
    """(H, W, 4) RGBA of what the overlay item paints, through its own paint()."""
    overlay = window.canvas.overlay
    rect = overlay.boundingRect()
    target = QImage(int(rect.width()), int(rect.height()), QImage.Format.Format_RGBA8888)
    target.fill(0)
    painter = QPainter(target)
    option = QStyleOptionGraphicsItem()
    option.exposedRect = QRectF(rect)
    overlay.paint(painter, option)
    painter.end()
    rows = np.frombuffer(target.constBits(), np.uint8, count=target.sizeInBytes()).reshape(target.height(), -1)
    return rows[:, : 4 * target.width()].reshape(target.height(), target.width(), 4).copy()


def test_a_grey_image_is_shown_from_its_own_pixels_with_no_rgb_or_rgba_copy(window, grey8, monkeypatch):
    path, pixels = grey8
    open_from_menu(window, monkeypatch, path)
    doc = window.current
    assert doc is not None and doc.path == path
    picture = window.canvas.image_item.image()
    # An indexed image over the slide's own pixels: the grey table is the display stretch.
    assert picture.format() == QImage.Format.Format_Indexed8 and shares(picture, doc.image.pixels)
    shown = picture.convertToFormat(QImage.Format.Format_RGB888)
    rows = np.frombuffer(shown.constBits(), np.uint8, count=shown.sizeInBytes()).reshape(60, -1)
    np.testing.assert_array_equal(rows[:, : 3 * 80].reshape(60, 80, 3), to_display_rgb(pixels))
    # The overlay is an indexed image over the mask itself, not a 4-bytes-per-pixel RGBA copy.
    overlay = window.canvas.overlay._image
    assert overlay.format() == QImage.Format.Format_Indexed8 and shares(overlay, doc.mask)
    # Nothing else holds a picture of the slide: the display picture is the pixels and a 256-entry table.
    display = doc.display_picture()
    assert display.pixels.nbytes == pixels.nbytes and display.grey_levels.nbytes == 256


def test_overlay_pixels_show_the_class_colours_and_follow_edits_and_recolouring(window, grey8, qtbot, monkeypatch):
    open_from_menu(window, monkeypatch, grey8[0])
    doc = window.current
    QApplication.processEvents()
    window.editing.select_tool("brush")
    window.editing.session.set_brush_radius(3)
    viewport = window.canvas.viewport()
    centre = window.canvas.mapFromScene(QPointF(40.5, 30.5))
    qtbot.mouseClick(viewport, Qt.MouseButton.LeftButton, pos=centre)
    assert doc.mask[30, 40] == 1
    colour = doc.classes.get(1).color
    drawn = render_overlay(window)
    assert tuple(drawn[30, 40, :3]) == tuple(colour) and drawn[30, 40, 3] == 255
    assert drawn[doc.mask == 0, 3].max() == 0  # background stays see-through

    monkeypatch.setattr(window.editing, "choose_color", lambda current, name: (10, 200, 30))
    window.editing.classes_panel.list.setCurrentItem(window.editing.classes_panel.item_for(1))
    qtbot.mouseClick(window.editing.classes_panel.color_button, Qt.MouseButton.LeftButton)
    assert tuple(render_overlay(window)[30, 40, :3]) == (10, 200, 30)
    assert shares(window.canvas.overlay._image, doc.mask)  # recolouring changed the table, not the pixels

    window.actions.outline_mask.trigger()
    outlined = render_overlay(window)
    assert outlined[30, 40, 3] == 0  # inside the dot
    assert tuple(outlined[30, 37]) == (10, 200, 30, 255)  # its left edge
    window.actions.undo.trigger()
    assert render_overlay(window)[30, 37, 3] == 0
    window.actions.outline_mask.trigger()
    window.actions.redo.trigger()
    assert tuple(render_overlay(window)[30, 40]) == (10, 200, 30, 255)


def test_switching_images_shows_each_ones_own_pixels_without_converting(window, grey8, tmp_path, monkeypatch):
    other = tmp_path / "other.tif"
    tifffile.imwrite(other, np.full((40, 30), 9, np.uint8))
    open_from_menu(window, monkeypatch, grey8[0], other)
    first, second = window.documents
    assert window.current is first
    window.actions.next_image.trigger()
    assert window.current is second
    assert window.canvas.image_item.picture() is second.display_picture()
    assert shares(window.canvas.overlay._image, second.mask)
    window.actions.previous_image.trigger()
    assert window.canvas.image_item.picture() is first.display_picture()  # kept, not made again


def slow_reader(delay_s, release=None):
    """read_image that takes its time in whichever thread calls it, and says which thread that was."""
    seen = {}

    def read(path, **kwargs):
        seen["thread"] = threading.get_ident()
        if release is not None:
            release.wait(10)
        else:
            time.sleep(delay_s)
        return opening_read(path, **kwargs)

    return read, seen


opening_read = opening.read_image


def test_opening_reads_off_the_gui_thread_and_the_window_keeps_running(window, grey8, monkeypatch):
    read, seen = slow_reader(1.0)
    monkeypatch.setattr(opening, "read_image", read)
    ticks = []
    timer = QTimer(window)
    timer.timeout.connect(lambda: ticks.append(window.findChild(QProgressDialog, "openProgress").isVisible()))
    timer.start(20)
    open_from_menu(window, monkeypatch, grey8[0])
    timer.stop()
    assert seen["thread"] != threading.get_ident()
    # The GUI thread's timer kept ticking through the one-second read, and the progress dialog came up.
    assert len(ticks) >= 15 and any(ticks)
    assert window.current is not None and window.current.path == grey8[0]
    assert not any(w.isVisible() for w in window.findChildren(QProgressDialog))


def test_cancel_of_a_slow_open_leaves_no_document(window, grey8, tmp_path, qtbot, monkeypatch):
    release = threading.Event()
    read, seen = slow_reader(None, release)
    monkeypatch.setattr(opening, "read_image", read)
    second = tmp_path / "second.tif"
    tifffile.imwrite(second, np.zeros((8, 8), np.uint8))

    def press_cancel():
        dialog = window.findChild(QProgressDialog, "openProgress")
        if dialog is None or not dialog.isVisible():
            QTimer.singleShot(50, press_cancel)
            return
        assert "grey8.tif" in dialog.labelText()
        qtbot.mouseClick(dialog.findChild(QPushButton), Qt.MouseButton.LeftButton)

    QTimer.singleShot(50, press_cancel)
    open_from_menu(window, monkeypatch, grey8[0], second)
    assert window.documents == [] and window.current is None
    release.set()  # the reading still under way finishes, and is dropped
    qtbot.waitUntil(lambda: not window.opening._jobs, timeout=5000)
    QApplication.processEvents()
    assert window.documents == [] and window.current is None
    assert window.last_error is None  # a Cancel is not an error


def test_errors_still_name_the_file_when_read_in_the_background(window, tmp_path, monkeypatch):
    bad = tmp_path / "broken.tif"
    bad.write_bytes(b"II*\x00garbage")
    open_from_menu(window, monkeypatch, bad)
    assert window.documents == []
    assert "broken.tif" in window.last_error
