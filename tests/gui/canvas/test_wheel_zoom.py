"""The mouse wheel zooms about the cursor whatever tool is active: the image point under it stays put."""
import numpy as np
import pytest
import tifffile
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QApplication

# Fractions of the viewport: corners, edges and centre, where a wrong anchor shows most.
CURSOR_SPOTS = [(0.2, 0.2), (0.8, 0.25), (0.5, 0.5), (0.25, 0.8), (0.85, 0.85)]


@pytest.fixture
def canvas(window, tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "square.tif"
    tifffile.imwrite(path, rng.integers(0, 255, (512, 512), dtype=np.uint8))
    window.open_paths([path])
    QApplication.processEvents()
    return window.canvas


def wheel(canvas, pos: QPointF, notches: int) -> None:
    """A real wheel event on the viewport at ``pos``, as the window system delivers it."""
    viewport = canvas.viewport()
    event = QWheelEvent(pos, viewport.mapToGlobal(pos.toPoint()).toPointF(), QPoint(0, 0), QPoint(0, 120 * notches),
                        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(viewport, event)


def image_point(canvas, pos: QPointF) -> QPointF:
    inverse, _ = canvas.viewportTransform().inverted()
    return inverse.map(pos)


@pytest.mark.parametrize("tool", ["brush", "eraser", "fill", "polygon", "pan"])
def test_wheel_zoom_keeps_the_point_under_the_cursor(window, canvas, qtbot, tool):
    window.editing.tool_actions[tool].trigger()
    assert window.editing.current_tool_name() == tool
    # Zoomed in a little (about the centre, by keys), so the view can scroll every way it needs to.
    for _ in range(3):
        window.actions.zoom_in.trigger()
    viewport = canvas.viewport()
    size = viewport.size()
    for fx, fy in CURSOR_SPOTS:
        pos = QPointF(round(fx * size.width()), round(fy * size.height()))
        # The last mouse move the view heard of is elsewhere: the zoom must follow the wheel's own position.
        qtbot.mouseMove(viewport, QPoint(3, 3))
        qtbot.mouseMove(viewport, pos.toPoint())
        for notches in (1, 2, -1, -2):
            before_zoom, before = canvas.zoom(), image_point(canvas, pos)
            wheel(canvas, pos, notches)
            assert (canvas.zoom() > before_zoom) == (notches > 0)
            after = image_point(canvas, pos)
            assert abs(after.x() - before.x()) <= 1 and abs(after.y() - before.y()) <= 1, (tool, fx, fy, notches)
