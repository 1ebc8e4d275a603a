"""Ordinary images are drawn by the slide's tiled item (one drawing path): picture, mask and objects alike.

Checked on what the viewport shows (a grab of the window), after real mouse and wheel events: the brush's
colour is there at once after the stroke, the picture is right at zoom 1 and zoomed out, and a pixel size
read from the file gives the image the slide's scale bar.
"""
import numpy as np
import pytest
import tifffile
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QApplication

from segstudio.gui.canvas.tiles import TiledItem

LEFT = Qt.MouseButton.LeftButton
GREY = 90  # the picture's value left of the bright stripe


@pytest.fixture
def doc(window, tmp_path):
    pixels = np.full((300, 400), GREY * 257, np.uint16)
    pixels[:, 300:] = 250 * 257  # a bright stripe on the right
    pixels[0, 0] = 0  # the display stretch keeps GREY and the stripe apart
    path = tmp_path / "calibrated.tif"
    tifffile.imwrite(path, pixels, imagej=True, resolution=(2.0, 2.0), metadata={"unit": "micron"})
    (doc,) = window.open_paths([path])
    QApplication.processEvents()
    return doc


def shown(window, x, y):
    """The RGB the viewport shows over the centre of image pixel (x, y)."""
    canvas = window.canvas
    point = canvas.mapFromScene(QPointF(x + 0.5, y + 0.5))
    colour = canvas.viewport().grab().toImage().pixelColor(point)
    return np.array([colour.red(), colour.green(), colour.blue()])


def brush_stroke(qtbot, window, radius, start, end):
    """The brush tool, its radius set, dragged with the left button from image point ``start`` to ``end``."""
    window.editing.select_tool("brush")
    window.editing.session.set_brush_radius(radius)
    canvas = window.canvas
    viewport = canvas.viewport()
    qtbot.mousePress(viewport, LEFT, pos=canvas.mapFromScene(QPointF(*start)))
    qtbot.mouseMove(viewport, canvas.mapFromScene(QPointF(*end)))
    qtbot.mouseRelease(viewport, LEFT, pos=canvas.mapFromScene(QPointF(*end)))


def wheel(canvas, notches):
    centre = QPointF(canvas.viewport().rect().center())
    event = QWheelEvent(centre, canvas.viewport().mapToGlobal(centre.toPoint()).toPointF(), QPoint(0, 0),
                        QPoint(0, 120 * notches), Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier,
                        Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(canvas.viewport(), event)


def test_an_ordinary_image_its_mask_and_its_objects_are_drawn_by_the_tiled_item(window, doc):
    canvas = window.canvas
    assert isinstance(canvas.image_item, TiledItem)
    assert isinstance(canvas.overlay, TiledItem)
    assert isinstance(window.objects.overlay, TiledItem)
    # A level held in memory: drawn straight from the picture's own buffer, no tile asked of any source.
    assert canvas.image_item.resident(0) is canvas.image_item.image()
    canvas.viewport().grab()
    assert canvas.image_item.last_level == 0 and canvas.image_item.requested == []


def test_a_brush_stroke_shows_in_the_view_as_soon_as_the_mouse_is_released(window, doc, qtbot):
    canvas = window.canvas
    canvas.set_zoom(1.0)
    canvas.centerOn(100, 100)
    QApplication.processEvents()
    before = shown(window, 100, 100)
    assert abs(int(before[0]) - int(before[1])) < 3  # grey: no class colour yet
    brush_stroke(qtbot, window, 4, (90.5, 100.5), (110.5, 100.5))
    assert doc.mask[100, 100] == window.editing.session.active_class
    # No wait for any tile to be remade: the grab right after the release shows the class colour.
    after = shown(window, 100, 100)
    colour = doc.classes.lut_rgba()[doc.mask[100, 100]][:3].astype(int)
    assert np.abs(after - before).sum() > 30
    assert np.abs(after - colour).sum() < np.abs(before - colour).sum()
    assert np.abs(shown(window, 100, 130) - before).sum() <= 6  # away from the stroke: unchanged


def test_zoomed_out_by_the_wheel_the_picture_still_shows_its_pixels(window, doc):
    canvas = window.canvas
    canvas.set_zoom(1.0)
    canvas.centerOn(300, 150)
    QApplication.processEvents()
    grey, stripe = shown(window, 270, 150), shown(window, 330, 150)
    wheel(canvas, -4)
    QApplication.processEvents()
    assert canvas.zoom() < 0.7
    assert np.abs(shown(window, 270, 150) - grey).sum() <= 6
    assert np.abs(shown(window, 330, 150) - stripe).sum() <= 6
    assert stripe.mean() > grey.mean() + 60


def test_a_pixel_size_from_the_file_gives_an_ordinary_image_a_scale_bar(window, doc, qtbot):
    canvas = window.canvas
    assert doc.model.pixel_size_um == pytest.approx(0.5)
    assert canvas.pixel_size_um() == pytest.approx(0.5)
    with_bar = canvas.viewport().grab().toImage()
    # Typing 0 ("unknown") in the Objects panel's pixel size takes the bar away; the view draws without it.
    spin = window.objects.panel.pixel_size
    type_pixel_size(qtbot, spin, "0")
    assert canvas.pixel_size_um() is None
    without_bar = canvas.viewport().grab().toImage()
    corner = [(x, y) for x in range(10, 150, 3) for y in range(without_bar.height() - 40, without_bar.height() - 4, 3)]
    assert any(with_bar.pixelColor(x, y) != without_bar.pixelColor(x, y) for x, y in corner)
    # Typing a size brings it back, read in that size.
    type_pixel_size(qtbot, spin, "0.25")
    assert canvas.pixel_size_um() == pytest.approx(0.25)


def type_pixel_size(qtbot, spin, text):
    spin.setFocus()
    qtbot.keyClick(spin, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClicks(spin, text)
    qtbot.keyClick(spin, Qt.Key.Key_Return)


def test_a_large_image_zoomed_out_is_drawn_from_a_coarser_level_as_a_slide_is(window, tmp_path, qtbot):
    # Stripes one pixel wide: drawn from full resolution at a quarter of its size, a view samples every
    # fourth column and shows stripes or a flat black or white; the coarser level shows their average grey.
    pixels = np.full((2400, 4200), 60, np.uint8)
    pixels[:, ::2] = 200
    pixels[0, :256] = np.arange(256)  # the full range, so the display stretch leaves the values alone
    path = tmp_path / "large.tif"
    tifffile.imwrite(path, pixels)
    window.open_paths([path])
    QApplication.processEvents()
    canvas = window.canvas
    item = canvas.image_item
    assert [ds for _w, _h, ds in item.levels.levels] == [1.0, 2.0, 4.0]  # down to about 1024 pixels
    canvas.set_zoom(1.0)
    centre = canvas.viewport().rect().center()
    image = canvas.viewport().grab().toImage()
    assert item.last_level == 0
    dark, bright = sorted(image.pixelColor(centre.x() + dx, centre.y()).red() for dx in (0, 1))
    assert bright - dark > 80  # the stripes, at full resolution
    wheel(canvas, -8)
    assert canvas.zoom() < 0.25
    canvas.viewport().grab()
    assert item.last_level == 2
    assert item.settle(10_000)
    image = canvas.viewport().grab().toImage()
    greys = [image.pixelColor(centre.x() + dx, centre.y()).red() for dx in range(-20, 20)]
    assert all(abs(grey - (dark + bright) / 2) < 12 for grey in greys), (dark, bright, greys)
    # Zoomed back in, the full-resolution stripes are drawn again.
    canvas.set_zoom(2.0)
    canvas.viewport().grab()
    assert item.last_level == 0


def test_a_large_image_has_the_slide_overview_and_a_click_there_moves_the_view(window, doc, tmp_path, qtbot):
    canvas = window.canvas
    assert canvas.navigator is None  # 400 x 300: the view shows it whole
    pixels = np.zeros((2400, 4200), np.uint8)
    pixels[1800:, :1000] = 255  # a bright corner, bottom left, where the click goes
    path = tmp_path / "large.tif"
    tifffile.imwrite(path, pixels)
    (large,) = window.open_paths([path])
    QApplication.processEvents()
    navigator = canvas.navigator
    assert navigator is not None and navigator.isVisible()
    assert navigator.thumbnail.pixelColor(10, navigator.thumbnail.height() - 10).red() > 200
    canvas.set_zoom(1.0)
    target = QPoint(navigator.width() // 8, navigator.height() * 7 // 8)
    qtbot.mouseClick(navigator, LEFT, pos=target)
    centre = canvas.mapToScene(canvas.viewport().rect().center())
    wanted = navigator.slide_point(QPointF(target))
    assert abs(centre.x() - wanted.x()) < 30 and abs(centre.y() - wanted.y()) < 30
    assert centre.x() < 1000 and centre.y() > 1800
    # Back to the small image in the Images panel: no overview.
    panel_list = window.editing.images_panel.list
    qtbot.mouseClick(panel_list.viewport(), LEFT, pos=panel_list.visualItemRect(panel_list.item(0)).center())
    assert window.current is doc
    assert canvas.navigator is None


def test_a_large_mask_zoomed_out_shows_each_stroke_and_colour_change_from_its_coarser_level(window, tmp_path,
                                                                                             qtbot):
    pixels = np.zeros((2400, 4200), np.uint8)
    pixels[0, :256] = np.arange(256)
    path = tmp_path / "large.tif"
    tifffile.imwrite(path, pixels)
    (doc,) = window.open_paths([path])
    QApplication.processEvents()
    canvas, overlay = window.canvas, window.canvas.overlay
    assert [ds for _w, _h, ds in overlay.levels.levels] == [1.0, 2.0, 4.0]
    canvas.fit_to_window()
    canvas.centerOn(2100, 1200)
    QApplication.processEvents()
    canvas.viewport().grab()
    assert overlay.last_level > 0
    before = shown(window, 2100, 1200)
    # A brush stroke while zoomed out: at once on the coarse level too.
    brush_stroke(qtbot, window, 40, (2000.5, 1200.5), (2200.5, 1200.5))
    assert doc.mask[1200, 2100] == window.editing.session.active_class
    painted = shown(window, 2100, 1200)
    assert overlay.last_level > 0
    assert np.abs(painted - before).sum() > 30
    # Undo: gone from the coarse level as well.
    qtbot.keyClick(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert doc.mask[1200, 2100] == 0
    assert np.abs(shown(window, 2100, 1200) - before).sum() <= 6
    # Redo, then a new colour for the class: the coarse level takes it too.
    qtbot.keyClick(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert doc.mask[1200, 2100] == window.editing.session.active_class
    lut = doc.classes.lut_rgba().copy()
    lut[doc.mask[1200, 2100]] = (0, 255, 0, 255)
    overlay.set_lut(lut)
    green = shown(window, 2100, 1200)
    assert green[1] > green[0] + 80 and green[1] > green[2] + 80  # green, at the mask opacity
