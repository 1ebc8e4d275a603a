"""Closing the Network Inspector takes everything it drew off the image; reopening brings it back."""
import numpy as np
import pytest
from PySide6.QtCore import QPointF, Qt
from PySide6.QtWidgets import QAbstractButton

from tests.engine.test_inspect import smooth_image
from tests.gui.inspector.test_inspector import compute, show_part_of_image, use_align_net, write_image

pytestmark = pytest.mark.usefixtures("single_torch_thread")


@pytest.fixture
def inspected(make_window, qtbot, tmp_path):
    """A window whose inspector shows a region box, a probe marker and a channel overlay on the image."""
    win = make_window((1000, 700))
    win.open_paths([write_image(tmp_path / "smooth.tif", smooth_image(96, 128)[..., 0])])
    win.inspector.show_action.trigger()
    use_align_net(qtbot, win)
    show_part_of_image(win)
    inspection = compute(qtbot, win)
    panel = win.inspector.panel
    panel.select_tap("half")
    panel.channels.overlay_check.setChecked(True)
    x0, y0, _, _ = inspection.region.rect
    point = win.canvas.mapFromScene(QPointF(x0 + 5.5, y0 + 7.5))
    qtbot.mouseClick(win.canvas.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.ControlModifier, point)
    assert win.inspector.probe is not None
    assert drawn(win) == {"region": True, "probe": True, "overlay": True}
    return win


def drawn(win):
    """What of the inspector's drawing is on the canvas, as the user would see it."""
    scene_items = win.canvas.scene().items()
    ctrl = win.inspector

    def shown(item):
        return item in scene_items and item.isVisible()

    return {"region": shown(ctrl.region_item), "probe": shown(ctrl.probe_item),
            "overlay": shown(win.canvas.heatmap_item)}


NOTHING = {"region": False, "probe": False, "overlay": False}
EVERYTHING = {"region": True, "probe": True, "overlay": True}


def test_the_menu_entry_closes_the_inspector_and_its_drawing_and_opens_both_again(inspected, qtbot):
    win = inspected
    action = win.inspector.show_action
    assert action.isChecked()
    action.trigger()  # Model > Look Inside the Network, a second time
    assert not win.inspector.dock.isVisible() and not action.isChecked()
    assert drawn(win) == NOTHING
    action.trigger()
    assert win.inspector.dock.isVisible() and action.isChecked()
    assert drawn(win) == EVERYTHING


def test_ctrl_shift_i_toggles_the_inspector(inspected, qtbot):
    win = inspected
    win.activateWindow()
    win.canvas.setFocus()
    qtbot.waitUntil(lambda: win.isActiveWindow())
    keys = Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier
    qtbot.keyClick(win.canvas, Qt.Key.Key_I, keys)
    assert not win.inspector.dock.isVisible() and drawn(win) == NOTHING
    qtbot.keyClick(win.canvas, Qt.Key.Key_I, keys)
    assert win.inspector.dock.isVisible() and drawn(win) == EVERYTHING


def test_the_docks_close_button_takes_the_drawing_off_the_image(inspected, qtbot):
    win = inspected
    close_button = win.inspector.dock.findChild(QAbstractButton, "qt_dockwidget_closebutton")
    assert close_button is not None and close_button.isVisible()
    qtbot.mouseClick(close_button, Qt.MouseButton.LeftButton)
    assert not win.inspector.dock.isVisible() and drawn(win) == NOTHING
    assert not win.inspector.show_action.isChecked()
    win.inspector.show_action.trigger()
    assert drawn(win) == EVERYTHING


def test_dock_close_and_view_panels_entry_behave_like_the_menu(inspected, qtbot):
    win = inspected
    win.inspector.dock.close()  # what the title bar's close button does
    assert drawn(win) == NOTHING
    win.inspector.dock.toggleViewAction().trigger()  # View > Panels > Network Inspector
    assert drawn(win) == EVERYTHING


def test_closing_leaves_a_confidence_map_shown_since_alone(inspected, qtbot):
    win = inspected
    win.canvas.set_heatmap(np.full((96, 128), 0.7, np.float32))  # the Model panel shows confidence
    win.inspector.dock.close()
    assert win.canvas.heatmap_item.isVisible()
    assert win.canvas.heatmap_item.sceneBoundingRect().width() == 128
    assert not win.inspector.region_item.isVisible() and not win.inspector.probe_item.isVisible()


def test_a_result_arriving_after_the_close_stays_off_the_image(make_window, qtbot, tmp_path):
    win = make_window((1000, 700))
    win.open_paths([write_image(tmp_path / "smooth.tif", smooth_image(96, 128)[..., 0])])
    win.inspector.show_dock()
    use_align_net(qtbot, win)
    assert win.inspector.compute_for_view()
    win.inspector.dock.close()
    qtbot.waitUntil(lambda: win.inspector.inspection is not None, timeout=30000)
    assert drawn(win) == NOTHING
    win.inspector.show_action.trigger()
    assert drawn(win)["region"]


def test_the_inspector_opens_as_a_tab_beside_the_objects_panel_with_the_whole_row(window, qtbot):
    objects = window.objects.dock
    objects.toggleViewAction().trigger()  # View > Panels > Objects (it starts closed)
    assert objects.isVisible() and window.dockWidgetArea(objects) == Qt.DockWidgetArea.BottomDockWidgetArea
    qtbot.keyClick(window.canvas, Qt.Key.Key_I, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    dock = window.inspector.dock
    qtbot.waitUntil(window.inspector.dock_in_sight)
    assert objects in window.tabifiedDockWidgets(dock)  # a tab away, not half the row
    qtbot.waitUntil(lambda: dock.width() > 0.9 * window.centralWidget().width())
