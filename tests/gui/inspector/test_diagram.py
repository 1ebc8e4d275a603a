"""The network drawn as its shape: a node per tap with its maps, an arc per skip pair, clicks that open the
tap's maps or the skip's pair, the quick preview before the full pass, and why a clicked pixel got its class."""
import numpy as np
import pytest
import torch
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QApplication

from segstudio.engine.inspect import TapInspector
from segstudio.gui.inspector.diagram import COMPACT, READABLE_SCALE, TALL, EdgeItem, TapNode
from segstudio.gui.inspector.panel import InspectorPanel
from segstudio.models.registry import build_model
from segstudio.models.taps import list_taps
from tests.engine.test_inspect import TINY, _Meta
from tests.gui.inspector.test_inspector import WAIT_MS, compute, window_with_model
from tests.gui.inspector.test_inspector import make_window as make_window  # noqa: F401 (the inspector open)

pytestmark = pytest.mark.usefixtures("single_torch_thread")


def panel_with(qtbot, arch, size=(1300, 420)):
    """The inspector panel alone, showing a tiny `arch` computed on a 64 x 80 image."""
    torch.manual_seed(0)
    model = build_model(arch, in_channels=1, num_classes=2, **TINY[arch])
    inspector = TapInspector(model, _Meta(), device="cpu")
    pixels = np.random.default_rng(0).random((64, 80)).astype(np.float32)
    inspection = inspector.inspect(pixels, inspector.plan(pixels.shape))
    panel = InspectorPanel()
    qtbot.addWidget(panel)
    panel.set_wide(True)  # as in the bottom dock
    panel.resize(*size)
    panel.show()
    qtbot.waitExposed(panel)
    panel.set_specs(list_taps(model))
    panel.set_inspection(inspection)
    return panel, inspection


def click(qtbot, diagram, point):
    qtbot.mouseClick(diagram.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, point)


@pytest.mark.parametrize("arch", list(TINY))
def test_diagram_has_a_node_per_tap_with_its_maps_and_an_arc_per_skip_pair(qtbot, arch):
    panel, inspection = panel_with(qtbot, arch)
    diagram = panel.diagram
    specs = panel.specs
    assert set(diagram.nodes) == {s.name for s in specs}
    scene_nodes = [i for i in diagram.scene().items() if isinstance(i, TapNode)]
    assert len(scene_nodes) == len(specs)
    for spec in specs:
        node = diagram.nodes[spec.name]
        assert not node.placeholder.isVisible() and not node.thumb.pixmap().isNull()
        c, h, w = inspection.tap(spec.name).shape
        assert node.info_text.text().startswith(f"{c}×{h}×{w}")
        assert spec.description in node.toolTip()
    arcs = [i for i in diagram.scene().items() if isinstance(i, EdgeItem) and i.edge.skip is not None]
    for spec in (s for s in specs if s.pairs_with):
        assert any(a.edge.skip == spec.name and a.edge.target == spec.pairs_with for a in arcs)


def test_before_any_region_the_diagram_shows_placeholders_with_the_scale(qtbot):
    panel = InspectorPanel()
    qtbot.addWidget(panel)
    model = build_model("unet", in_channels=1, num_classes=2, **TINY["unet"])
    panel.set_specs(list_taps(model))
    node = panel.diagram.nodes["enc2"]
    assert node.placeholder.isVisible() and node.name_text.text() == "enc2 · 1/2"
    assert "1/2 size" in node.toolTip()


@pytest.mark.parametrize("arch, tap", [("unet", "dec2"), ("deeplabv3plus", "aspp branch rate 12"),
                                       ("deconvnet", "pool3")])
def test_clicking_a_node_opens_that_taps_maps(qtbot, arch, tap):
    panel, _ = panel_with(qtbot, arch)
    diagram = panel.diagram
    diagram.ensureVisible(diagram.nodes[tap], 10, 10)
    click(qtbot, diagram, diagram.node_view_point(tap))
    assert panel.selected_tap() == tap
    assert panel.channels.tap_name == tap and panel.channels.grid.count() > 0
    assert panel.tabs.currentIndex() == panel.MAPS_TAB
    assert diagram.selected == tap


@pytest.mark.parametrize("arch, skip", [("unet", "skip2 (from enc2)"), ("fcn8s", "score_pool4"),
                                        ("deconvnet", "unpool3 (at pool3 maxima)"),
                                        ("deeplabv3plus", "low-level skip")])
def test_clicking_a_skip_arc_shows_that_pair_side_by_side(qtbot, arch, skip):
    panel, _ = panel_with(qtbot, arch)
    diagram = panel.diagram
    panel.tabs.setCurrentIndex(panel.MAPS_TAB)
    edge = diagram.edge_for_skip(skip)
    diagram.ensureVisible(edge, 10, 10)
    point = diagram.skip_view_point(skip)
    assert point is not None and diagram.viewport().rect().contains(point)
    click(qtbot, diagram, point)
    assert panel.tabs.currentIndex() == panel.SKIPS_TAB
    shown = panel.skips.column_titles()
    assert shown[0] == skip and skip in panel.skips.current().title
    assert next(s.pairs_with for s in panel.specs if s.name == skip) in shown


def test_grid_thumbnails_are_at_least_128_px_and_the_overlay_switch_is_in_sight(qtbot):
    panel, _ = panel_with(qtbot, "unet", size=(1366, 380))  # the dock on a 1366 x 768 screen
    panel.show_tap_maps("enc1")
    grid = panel.channels.grid
    assert grid.iconSize().width() >= 128
    check = panel.channels.overlay_check
    assert check.isVisible() and not check.visibleRegion().isEmpty()
    large = panel.channels.large
    assert large.visibleRegion().boundingRect().size() == large.size()  # the large view is not cut


def test_a_larger_view_shows_a_quick_preview_in_the_diagram_before_the_full_pass(make_window, qtbot, tmp_path):
    import tifffile

    path = tmp_path / "wide.tif"
    tifffile.imwrite(path, (np.random.default_rng(2).random((300, 420)) * 255).astype(np.uint8))
    win = window_with_model(make_window, qtbot, path, "unet")
    panel = win.inspector.panel
    shown = []
    original = panel.set_inspection
    panel.set_inspection = lambda inspection, preview=False: (shown.append(preview), original(inspection, preview))
    win.canvas.fit_to_window()
    inspection = compute(qtbot, win)
    assert shown[:2] == [True, False]
    assert "(preview)" not in panel.diagram.nodes["enc1"].info_text.text()
    assert panel.diagram.nodes["enc1"].info_text.text().startswith(f"4×{inspection.tap('enc1').shape[1]}")


def test_ctrl_click_on_the_image_says_why_the_pixel_got_its_class(make_window, qtbot, tmp_path):
    import tifffile

    path = tmp_path / "small.tif"
    tifffile.imwrite(path, (np.random.default_rng(3).random((64, 64)) * 255).astype(np.uint8))
    win = window_with_model(make_window, qtbot, path, "unet")
    inspection = compute(qtbot, win)
    x0, y0, _w, _h = inspection.region.rect
    x, y = x0 + 20, y0 + 9
    point = win.canvas.mapFromScene(QPointF(x + 0.5, y + 0.5))
    qtbot.mouseClick(win.canvas.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.ControlModifier, point)
    qtbot.waitUntil(lambda: win.inspector.explanation is not None, timeout=WAIT_MS)
    panel = win.inspector.panel
    explanation = win.inspector.explanation
    assert (explanation.x, explanation.y) == (x, y)
    assert panel.tabs.currentIndex() == panel.WHY_TAB
    text = panel.why.answer.text()
    assert f"Pixel ({x}, {y})" in text and "This pixel is drawn as" in text and "skip" in text
    rows = panel.why.rows()
    skips = rows["Skip connections switched off one at a time"]
    assert sorted(name for name, _ in skips) == sorted(s.name for s in panel.specs if s.kind == "skip")
    assert all(change.startswith(("+", "-")) for _, change in skips)


def deep_unet_panel(qtbot, size):
    """The panel with a U-Net of the bundled model's depth (five levels) on a 64 x 80 image."""
    torch.manual_seed(0)
    model = build_model("unet", in_channels=1, num_classes=2, depth=4, base_channels=4)
    inspector = TapInspector(model, _Meta(), device="cpu")
    pixels = np.random.default_rng(0).random((64, 80)).astype(np.float32)
    panel = InspectorPanel()
    qtbot.addWidget(panel)
    panel.set_wide(True)
    panel.resize(*size)
    panel.show()
    qtbot.waitExposed(panel)
    panel.set_specs(list_taps(model))
    panel.set_inspection(inspector.inspect(pixels, inspector.plan(pixels.shape)))
    return panel


@pytest.mark.parametrize(("size", "look"), [((1010, 430), COMPACT), ((1560, 640), TALL)])
def test_on_a_laptop_screen_the_diagram_stays_readable_and_scrolls_sideways(qtbot, size, look):
    # the inspector dock's size on a 1366 x 768 screen (beside the right-hand panels), and on 1920 x 1080
    panel = deep_unet_panel(qtbot, size)
    diagram = panel.diagram
    assert diagram.look == look
    assert diagram.transform().m11() >= READABLE_SCALE  # 9 pt captions drawn at a readable size
    rows = {round(node.pos().y()) for node in diagram.nodes.values()}
    assert len(rows) == 5 and diagram.verticalScrollBar().maximum() == 0  # every level in sight at once
    assert all(not node.placeholder.isVisible() for node in diagram.nodes.values())
    if look is COMPACT:
        bar = diagram.horizontalScrollBar()
        assert bar.maximum() > 0
        before = bar.value()
        wheel_at = QPointF(diagram.viewport().rect().center())
        event = QWheelEvent(wheel_at, diagram.viewport().mapToGlobal(wheel_at), QPoint(), QPoint(0, -120),
                            Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase,
                            False)
        QApplication.sendEvent(diagram.viewport(), event)
        assert bar.value() > before  # the wheel walks along the network
    # The far end of the network is reached and opens its maps as before.
    diagram.ensureVisible(diagram.nodes["dec1"], 10, 10)
    click(qtbot, diagram, diagram.node_view_point("dec1"))
    assert panel.selected_tap() == "dec1" and panel.channels.tap_name == "dec1"


def test_the_maps_controls_keep_their_words_in_the_width_a_laptop_gives_them(qtbot):
    """Beside the diagram on a 1366-pixel screen the Maps tab is under 500 px wide: what the thumbnails are
    ordered by is still read in full (the colour map and range combos may shrink)."""
    from segstudio.gui.inspector.grid import ChannelBrowser

    browser = ChannelBrowser()
    qtbot.addWidget(browser)
    browser.resize(400, 300)
    browser.show()
    qtbot.waitExposed(browser)
    sort = browser.sort_combo
    longest = max(sort.fontMetrics().horizontalAdvance(sort.itemText(i)) for i in range(sort.count()))
    assert sort.width() > longest + 16  # the text and the arrow
