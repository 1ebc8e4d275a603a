"""The Network Inspector dock: taps listed for the active model, computed for the view, channels in a grid,
an overlay that lines up with the slide, skip connections side by side, the pixel probe and export."""
import numpy as np
import pytest
import tifffile
import torch
from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QImage

from segstudio.models.checkpoint import ModelMeta, save_checkpoint
from segstudio.models.registry import build_model
from segstudio.models.taps import list_taps, run_with_taps
from tests.engine.test_inspect import TINY, AlignNet, _Meta, smooth_image

WAIT_MS = 30000


pytestmark = pytest.mark.usefixtures("single_torch_thread")


def add_to_library(arch, num_classes=2, **overrides):
    from segstudio.core import paths

    torch.manual_seed(0)
    model = build_model(arch, in_channels=1, num_classes=num_classes, **{**TINY.get(arch, {}), **overrides})
    name = f"tiny-{arch}"
    folder = paths.user_models_dir() / name
    folder.mkdir(parents=True, exist_ok=True)
    classes = [{"id": i, "name": ["background", "nucleus", "mitosis"][i], "color": [0, 0, 0]}
               for i in range(num_classes)]
    save_checkpoint(folder / "v1.safetensors", model,
                    ModelMeta(name=name, version=1, arch=arch, config=model.config, classes=classes, in_channels=1))
    return f"{name}/v1"


@pytest.fixture
def make_window(make_window):
    """A window with the inspector open (it starts hidden)."""

    def make():
        win = make_window((1000, 700))
        win.inspector.show_dock()
        return win

    return make


def write_image(path, pixels):
    tifffile.imwrite(path, pixels)
    return path


@pytest.fixture
def nuclei_tif(tmp_path):
    rng = np.random.default_rng(5)
    img = (rng.random((72, 88)) * 300 + 100).astype(np.uint16)
    img[20:40, 30:60] += 2000
    return write_image(tmp_path / "nuclei.tif", img)


@pytest.fixture
def smooth_tif(tmp_path):
    return write_image(tmp_path / "smooth.tif", smooth_image(96, 128)[..., 0])


def wait_described(qtbot, win):
    qtbot.waitUntil(lambda: win.inspector.description is not None, timeout=WAIT_MS)


def window_with_model(make_window, qtbot, image, arch, **overrides):
    """A window showing `image` with a tiny `arch` model selected and its taps listed in the inspector."""
    model_id = add_to_library(arch, **overrides)
    win = make_window()
    win.open_paths([image])
    assert win.prediction.select_model(model_id)
    wait_described(qtbot, win)
    return win


def compute(qtbot, win, **kwargs):
    ctrl = win.inspector
    ctrl.inspection = None
    assert ctrl.compute_for_view()
    qtbot.waitUntil(lambda: ctrl.inspection is not None, timeout=WAIT_MS)
    return ctrl.inspection


def use_align_net(qtbot, win):
    win.inspector.use_model((AlignNet(), _Meta(arch="align-test")))
    wait_described(qtbot, win)


def show_part_of_image(win, zoom=8.0, centre=(64, 50)):
    """Zoom in so the view (and the region) starts away from the image origin."""
    win.canvas.set_zoom(zoom)
    win.canvas.centerOn(QPointF(*centre))


def inspect_part_of(make_window, qtbot, path):
    """A window on `path` whose inspector has computed the alignment net on part of the image."""
    win = make_window()
    win.open_paths([path])
    use_align_net(qtbot, win)
    show_part_of_image(win)
    return win, compute(qtbot, win)


# --- taps listed for each architecture -----------------------------------------------------------------
@pytest.mark.parametrize("arch", list(TINY))
def test_dock_lists_taps_grouped_in_network_order_with_region_shapes(make_window, qtbot, nuclei_tif, arch):
    model_id = add_to_library(arch)
    win = make_window()
    win.open_paths([nuclei_tif])
    assert win.prediction.select_model(model_id)
    wait_described(qtbot, win)
    panel = win.inspector.panel
    from segstudio.models.library import ModelLibrary

    model, meta = ModelLibrary().load(model_id)
    order = [s.name for s in list_taps(model)]
    kinds = {s.name: s.kind for s in list_taps(model)}
    listed = panel.listed_taps()
    assert sorted(name for _, name, _ in listed) == sorted(order)
    assert all(shape == "–" for _, _, shape in listed)  # no region yet

    inspection = compute(qtbot, win)
    listed = panel.listed_taps()
    groups = {}
    for group, name, _ in listed:
        groups.setdefault(group, []).append(name)
    for group, names in groups.items():
        assert names == [n for n in order if n in names], f"{group} not in network order"
        assert len({kinds[n] for n in names} - {"decoder", "fusion"}) <= 1
    # Shapes come from the region actually computed: check against an independent pass over that region.
    from segstudio.engine.predict import ModelInput

    region = inspection.region
    rows, cols = slice(region.y, region.y + region.h), slice(region.x, region.x + region.w)
    x = ModelInput(win.current.image.pixels, 1, meta.normalisation).region(rows, cols)
    with torch.no_grad():
        _, direct = run_with_taps(model.eval(), torch.from_numpy(x)[None])
    shapes = {name: shape for _, name, shape in listed}
    for name, tensor in direct.items():
        c, h, w = tensor.shape[1:]
        assert shapes[name] == f"{c} x {h} x {w}"

    # Choosing a tap fills the grid with one thumbnail per channel.
    deepest = max(direct, key=lambda n: direct[n].shape[1])
    panel.select_tap(deepest)
    assert panel.channels.grid.count() == min(64, direct[deepest].shape[1])
    assert deepest in panel.description.text()


def test_wide_layer_is_paged_and_sorted_by_mean_activation(make_window, qtbot, nuclei_tif):
    win = window_with_model(make_window, qtbot, nuclei_tif, "unet", base_channels=20, depth=2)
    inspection = compute(qtbot, win)
    browser = win.inspector.panel.channels
    win.inspector.panel.select_tap("bottleneck")
    tap = inspection.tap("bottleneck")
    assert tap.channels == 80
    assert browser.grid.count() == 64 and "Page 1 of 2" in browser.page_label.text()
    first = browser.grid.item(0).data(Qt.ItemDataRole.UserRole)
    assert first == int(np.argmax(tap.stats.mean))
    browser.next_button.click()
    assert browser.grid.count() == 16 and "Page 2 of 2" in browser.page_label.text()
    shown = {browser.grid.item(i).data(Qt.ItemDataRole.UserRole) for i in range(16)}
    browser.prev_button.click()
    shown |= {browser.grid.item(i).data(Qt.ItemDataRole.UserRole) for i in range(64)}
    assert shown == set(range(80))
    browser.sort_combo.setCurrentIndex(browser.sort_combo.findData("index"))
    assert [browser.grid.item(i).data(Qt.ItemDataRole.UserRole) for i in range(3)] == [0, 1, 2]
    browser.sort_combo.setCurrentIndex(browser.sort_combo.findData("variance"))
    assert browser.grid.item(0).data(Qt.ItemDataRole.UserRole) == int(np.argmax(tap.stats.std))


# --- overlay on the image ---------------------------------------------------------------------------------
def _heatmap_grey_at(canvas, x, y):
    item = canvas.heatmap_item
    local = item.mapFromScene(QPointF(x + 0.5, y + 0.5))
    image = item.pixmap().toImage().convertToFormat(QImage.Format.Format_RGB888)
    return image.pixelColor(int(local.x()), int(local.y())).red()


@pytest.mark.parametrize("tap_name, tolerance", [("same", 0.01), ("half", 0.04)])
def test_channel_overlay_lines_up_with_the_image(make_window, qtbot, smooth_tif, tap_name, tolerance):
    win, inspection = inspect_part_of(make_window, qtbot, smooth_tif)
    x0, y0, w, h = inspection.region.rect
    assert x0 > 0 and y0 > 0 and inspection.region.step == 1
    panel = win.inspector.panel
    panel.select_tap(tap_name)
    browser = panel.channels
    browser.colormap_combo.setCurrentText("grey")
    browser.overlay_check.setChecked(True)
    canvas = win.canvas
    assert canvas.heatmap_item.isVisible()
    rect = canvas.heatmap_item.sceneBoundingRect()
    assert (rect.x(), rect.y(), rect.width(), rect.height()) == pytest.approx((x0, y0, w, h))
    tap = inspection.tap(tap_name)
    low, high = float(tap.stats.min[0]), float(tap.stats.max[0])
    pixels = win.current.image.pixels[..., 0]
    errors = []
    for y in range(y0 + 2, y0 + h - 2, 3):
        for x in range(x0 + 2, x0 + w - 2, 3):
            expected = (pixels[y, x] - low) / (high - low)
            errors.append(abs(_heatmap_grey_at(canvas, x, y) / 255 - expected))
    assert max(errors) < tolerance + 1 / 255
    browser.overlay_check.setChecked(False)
    assert not canvas.heatmap_item.isVisible()


# --- probe -------------------------------------------------------------------------------------------------
def test_ctrl_click_probes_a_pixel_through_every_tap(make_window, qtbot, smooth_tif):
    win, inspection = inspect_part_of(make_window, qtbot, smooth_tif)
    x0, y0, w, h = inspection.region.rect
    x, y = x0 + 5, y0 + 7
    viewport = win.canvas.viewport()
    point = win.canvas.mapFromScene(QPointF(x + 0.5, y + 0.5))
    qtbot.mouseClick(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.ControlModifier, point)
    probe = win.inspector.probe
    assert probe is not None and (probe.x, probe.y) == (x, y)
    chart = win.inspector.panel.probe_chart
    assert chart.probe is probe and [r.name for r in probe.rows] == ["same", "half", "quarter", "logits"]
    value = float(win.current.image.pixels[y, x, 0])
    assert probe.rows[0].mean == pytest.approx(value, abs=1e-6)
    assert probe.probabilities[1][1] == pytest.approx(1 / (1 + np.exp(-(20 * value - 10))), abs=1e-5)
    assert win.inspector.probe_item.isVisible()


def test_probe_mode_click_outside_the_region_computes_a_window_around_it(make_window, qtbot, smooth_tif):
    win = make_window()
    win.open_paths([smooth_tif])
    use_align_net(qtbot, win)
    panel = win.inspector.panel
    panel.size_combo.setCurrentIndex(panel.size_combo.findData(128))
    show_part_of_image(win, zoom=6.0, centre=(30, 30))
    inspection = compute(qtbot, win)
    target = (120, 90)
    assert not inspection.region.contains(*target)
    win.canvas.centerOn(QPointF(*target))
    panel.probe_button.setChecked(True)
    point = win.canvas.mapFromScene(QPointF(target[0] + 0.5, target[1] + 0.5))
    qtbot.mouseClick(win.canvas.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, point)
    qtbot.waitUntil(lambda: win.inspector.probe is not None and (win.inspector.probe.x, win.inspector.probe.y)
                    == target, timeout=WAIT_MS)
    region = win.inspector.inspection.region
    assert region.how == "around point" and region.contains(*target)
    assert "around the clicked point" in panel.region_label.text()


# --- bounded regions, said in the UI ---------------------------------------------------------------------
def test_large_view_is_cropped_or_downsampled_and_the_panel_says_which(make_window, qtbot, tmp_path):
    path = write_image(tmp_path / "large.tif", (np.random.default_rng(0).random((400, 600)) * 255).astype(np.uint8))
    add_to_library("unet")
    win = make_window()
    win.open_paths([path])
    win.prediction.select_model("tiny-unet/v1")
    wait_described(qtbot, win)
    panel = win.inspector.panel
    panel.size_combo.setCurrentIndex(panel.size_combo.findData(128))
    win.canvas.fit_to_window()
    inspection = compute(qtbot, win)
    assert inspection.region.input_shape == (128, 128) and inspection.region.step == 1
    assert "centre 128 x 128" in panel.region_label.text()
    panel.large_combo.setCurrentIndex(panel.large_combo.findData("downsample"))
    inspection = compute(qtbot, win)
    assert inspection.region.step == 5 and max(inspection.region.input_shape) <= 128
    assert "downsampled x5" in panel.region_label.text()
    assert inspection.tap("enc1").shape[1:] == inspection.region.input_shape


def test_moving_the_view_marks_the_result_out_of_date(make_window, qtbot, smooth_tif):
    win, _ = inspect_part_of(make_window, qtbot, smooth_tif)
    label = win.inspector.panel.region_label
    assert "moved" not in label.text()
    win.canvas.horizontalScrollBar().setValue(win.canvas.horizontalScrollBar().value() + 80)
    assert "moved" in label.text()
    compute(qtbot, win)
    assert "moved" not in label.text()


# --- skip connections ------------------------------------------------------------------------------------
def test_unet_skip_level_shows_skip_upsampled_and_merged_tensors(make_window, qtbot, nuclei_tif):
    win = window_with_model(make_window, qtbot, nuclei_tif, "unet")
    compute(qtbot, win)
    skips = win.inspector.panel.skips
    assert skips.select("skip1 (from enc1)")
    assert skips.column_titles()[:3] == ["skip1 (from enc1)", "up1 (decoder before concat)", "merge1 (after concat)"]
    # A header, the channel mean and the strongest channels that fit for each tensor.
    assert skips.cells.count() == (2 + skips.channel_rows) * len(skips.column_titles())


def test_fcn_score_maps_next_to_the_prediction(make_window, qtbot, nuclei_tif):
    win = window_with_model(make_window, qtbot, nuclei_tif, "fcn8s")
    compute(qtbot, win)
    skips = win.inspector.panel.skips
    assert skips.column_titles() == ["score_32s", "score_16s", "score_8s", "logits"]
    assert skips.class_combo.isVisibleTo(skips) and skips.class_combo.currentText() == "score: nucleus"
    skips.class_combo.setCurrentIndex(skips.class_combo.count() - 1)
    assert skips.cells.count() == 2 * 4


# --- export -------------------------------------------------------------------------------------------------
def test_png_export_writes_a_picture_of_the_dock(make_window, qtbot, nuclei_tif, tmp_path, monkeypatch):
    import cv2
    from PySide6.QtWidgets import QFileDialog

    win = window_with_model(make_window, qtbot, nuclei_tif, "unet")
    compute(qtbot, win)
    target = tmp_path / "inspector view"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(target), "PNG image (*.png)"))
    win.inspector.panel.save_png_button.click()
    written = tmp_path / "inspector view.png"
    assert win.inspector.last_saved == written and written.is_file()
    picture = cv2.imread(str(written))
    assert picture.shape[0] > 200 and picture.shape[1] > 200
    assert picture.std() > 20 and len(np.unique(picture.reshape(-1, 3), axis=0)) > 50


def test_tap_export_npy_round_trips_and_tiff_is_offered(make_window, qtbot, nuclei_tif, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QFileDialog

    win = window_with_model(make_window, qtbot, nuclei_tif, "unet")
    inspection = compute(qtbot, win)
    win.inspector.panel.select_tap("merge2 (after concat)")
    answers = iter([(str(tmp_path / "merge2"), "NumPy array (*.npy)"),
                    (str(tmp_path / "merge2"), "TIFF image (*.tif *.tiff)")])
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: next(answers))
    win.inspector.panel.save_tap_button.click()
    loaded = np.load(tmp_path / "merge2.npy", allow_pickle=False)
    np.testing.assert_array_equal(loaded, inspection.tap("merge2 (after concat)").tensor)
    win.inspector.panel.save_tap_button.click()
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "merge2.tif"), loaded)


# --- keeps working ---------------------------------------------------------------------------------------
def test_a_failing_pass_is_reported_and_the_window_keeps_working(make_window, qtbot, smooth_tif):
    win = make_window()
    win.open_paths([smooth_tif])
    # Metadata that promises three input channels to a one-channel network: the pass fails.
    win.inspector.use_model((AlignNet(), _Meta(in_channels=3)))
    wait_described(qtbot, win)
    assert win.inspector.compute_for_view()
    qtbot.waitUntil(lambda: win.last_error is not None, timeout=WAIT_MS)
    assert "could not be computed" in win.last_error
    qtbot.waitUntil(lambda: win.inspector.panel.compute_button.isEnabled(), timeout=WAIT_MS)
    use_align_net(qtbot, win)
    assert compute(qtbot, win) is not None


def test_switching_image_clears_the_region(make_window, qtbot, smooth_tif, nuclei_tif):
    win = make_window()
    win.open_paths([smooth_tif, nuclei_tif])
    win.set_current(win.documents[0])
    use_align_net(qtbot, win)
    compute(qtbot, win)
    assert win.inspector.region_item.isVisible()
    win.set_current(win.documents[1])
    assert win.inspector.inspection is None and not win.inspector.region_item.isVisible()
    assert win.inspector.panel.channels.grid.count() == 0


def test_hidden_inspector_leaves_clicks_to_the_editing_tools(make_window, qtbot, smooth_tif):
    win = make_window()
    win.open_paths([smooth_tif])
    use_align_net(qtbot, win)
    compute(qtbot, win)
    panel = win.inspector.panel
    panel.probe_button.setChecked(True)
    win.inspector.dock.hide()  # the user closes the inspector
    qtbot.waitUntil(lambda: not win.inspector.dock_in_sight())
    assert not panel.probe_button.isChecked()
    point = win.canvas.mapFromScene(QPointF(10.5, 10.5))
    qtbot.mouseClick(win.canvas.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.ControlModifier, point)
    assert win.inspector.probe is None


def test_inspector_works_again_after_a_cancelled_close(make_window, qtbot, smooth_tif):
    win = make_window()
    win.open_paths([smooth_tif])
    use_align_net(qtbot, win)
    win.model_host.shutdown()  # what a close does, before the window may decide to stay open
    assert compute(qtbot, win) is not None


def test_a_constant_map_is_drawn_flat_not_as_stretched_rounding_noise():
    from segstudio.engine.inspect import to_input_grid
    from segstudio.gui.inspector.render import normalise, value_range

    # A global-average branch (PSPNet bin 1): one value stretched over the map by bilinear interpolation,
    # which leaves float32 rounding differences in the last bits.
    stretched = torch.nn.functional.interpolate(torch.full((1, 1, 1, 1), 0.3712345), size=(5, 7), mode="bilinear")
    assert float(stretched.max() - stretched.min()) > 0
    grid = to_input_grid(stretched[0, 0].numpy(), (8.0, 8.0), (40, 56))
    shown = normalise(grid, *value_range(grid, False))
    assert np.all(shown == 0.5)
    ramp = np.linspace(0.3712345, 0.3713, 40 * 56, dtype=np.float32).reshape(40, 56)
    assert normalise(ramp, *value_range(ramp, False)).max() == 1.0  # a real, small contrast is still shown


def test_inspector_leaves_the_prediction_overlay_alone_unless_it_shows_a_channel(make_window, qtbot, smooth_tif):
    win = make_window()
    win.open_paths([smooth_tif])
    use_align_net(qtbot, win)
    win.canvas.set_heatmap(np.full((96, 128), 0.7, np.float32))  # as the Model panel shows confidence
    show_part_of_image(win)
    assert compute(qtbot, win).region.w < 128
    browser = win.inspector.panel.channels
    win.inspector.panel.select_tap("half")
    browser.select_channel(0)
    assert win.canvas.heatmap_item.isVisible()
    assert win.canvas.heatmap_item.sceneBoundingRect().width() == 128  # still the whole-image map
    browser.overlay_check.setChecked(True)
    assert win.canvas.heatmap_item.sceneBoundingRect().width() == win.inspector.inspection.region.w
    browser.overlay_check.setChecked(False)
    assert not win.canvas.heatmap_item.isVisible()


def test_menu_opens_the_inspector_under_the_image_side_by_side(make_window, qtbot):
    from PySide6.QtCore import Qt

    win = make_window()
    win.inspector.dock.hide()
    assert not win.inspector.dock.isVisible()
    win.inspector.show_action.trigger()
    assert win.inspector.dock.isVisible()
    assert win.dockWidgetArea(win.inspector.dock) == Qt.DockWidgetArea.BottomDockWidgetArea
    assert win.inspector.panel.splitter.orientation() == Qt.Orientation.Horizontal
    assert win.inspector.show_action in win.menus["model"].actions()
    win.inspector.dock.setFloating(True)
    win.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, win.inspector.dock)
    assert win.inspector.panel.splitter.orientation() == Qt.Orientation.Vertical
