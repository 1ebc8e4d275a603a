"""A slide's labels show in their class's colour whatever the class id: 16-bit labels (over 255 classes)
are not folded onto the colours of the first 256."""
import numpy as np
from PySide6.QtCore import QPoint, QPointF
from PySide6.QtWidgets import QApplication

from segstudio.core.imageio import Slide
from segstudio.core.labels import ClassTable, LabelClass
from segstudio.gui.slides.window import open_slide_window
from tests.gui.slides.test_slide_window import _drag, pyramid  # noqa: F401

WIDE, FOLDED = (255, 0, 255), (0, 255, 0)  # class 300's colour, and that of class 300 - 256 = 44


def _classes() -> ClassTable:
    colours = {300: WIDE, 44: FOLDED}
    return ClassTable([LabelClass(0, "background", (0, 0, 0))]
                      + [LabelClass(i, f"cells {i}", colours.get(i, (60, 60, 60))) for i in range(1, 301)])


def _pixel(widget, point):
    image = widget.grab().toImage()
    colour = image.pixelColor(point)
    return np.array([colour.red(), colour.green(), colour.blue()], float)


def test_a_class_id_over_255_is_drawn_in_its_own_colour(pyramid, qtbot):  # noqa: F811
    window = open_slide_window(Slide(pyramid), None, _classes())
    try:
        _paint_and_look(window, qtbot)
    finally:
        window.close()
        QApplication.processEvents()


def _paint_and_look(window, qtbot):
    window.resize(1000, 700)
    window.show()
    qtbot.waitExposed(window)
    window.activateWindow()
    assert window.doc.store.dtype == np.uint16
    canvas = window.canvas
    window.magnification_actions[40].trigger()  # full resolution
    canvas.centerOn(QPointF(4000, 3000))
    window.class_box.setCurrentIndex(window.class_box.findData(300))
    window.tools["brush"].trigger()
    window.radius.setValue(20)
    _drag(canvas, [QPoint(500, 350), QPoint(520, 350)])
    spot = QPoint(510, 350)
    p = canvas.mapToScene(spot)
    assert window.doc.store.read(round(p.y()), round(p.x()), 1, 1)[0, 0] == 300
    viewport = canvas.viewport()
    for item in (window.image_tiles, window.label_tiles):
        viewport.repaint()
        qtbot.waitUntil(lambda item=item: item.settle(100))
    viewport.repaint()
    shown = _pixel(viewport, spot)
    window.label_tiles.hide()
    viewport.repaint()
    under = _pixel(viewport, spot)
    window.label_tiles.show()
    opacity = window.label_tiles.opacity()
    expected = opacity * np.array(WIDE) + (1 - opacity) * under
    folded = opacity * np.array(FOLDED) + (1 - opacity) * under
    assert np.abs(shown - expected).max() <= 4, (shown, expected)
    assert np.abs(shown - folded).max() > 40
