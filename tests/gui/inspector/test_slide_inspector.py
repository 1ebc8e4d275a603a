"""The inspector of a whole-slide window: the maps of the tile at the centre of the view, computed through
the model host's warm model, follow the view when the user pans with the mouse, zooms with the wheel or
scrolls with the keys; a pass for a view the user has left is stopped and never shown."""
import time

import numpy as np
import pytest
import torch
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from segstudio.engine.inspect import TapInspector
from segstudio.engine.inspect_slide import inspect_slide
from segstudio.models.checkpoint import ModelMeta
from segstudio.models.registry import build_model
from segstudio.synth.slides import TissuePatch, write_pyramid_ome
from tests.gui.slides.test_slide_window import _close_all, open_slide

H, W = 2048, 3072
WAIT_MS = 60000
pytestmark = pytest.mark.usefixtures("single_torch_thread")


@pytest.fixture(scope="module")
def small_slide(tmp_path_factory):
    return write_pyramid_ome(tmp_path_factory.mktemp("slide") / "tissue.ome.tif", H, W, levels=3,
                             patches=[TissuePatch(1000, 1500, 700, 1200)])


def tiny_rgb_unet():
    torch.manual_seed(0)
    model = build_model("unet", in_channels=3, num_classes=2, depth=2, base_channels=4)
    classes = [{"id": 0, "name": "background", "color": [0, 0, 0]}, {"id": 1, "name": "nucleus", "color": [255, 0, 0]}]
    return model, ModelMeta(name="tiny-rgb", version=1, arch="unet", config=model.config, classes=classes,
                            in_channels=3)


@pytest.fixture
def slide_window(window, small_slide, qtbot, monkeypatch):
    yield open_slide(window, small_slide, qtbot, monkeypatch, height=760, fit=False)
    _close_all(window)


def open_inspector(qtbot, slide_window):
    """Model > Look Inside the Network (Ctrl+Shift+I) in the slide window, then the first maps."""
    inspector = slide_window.inspector
    assert inspector.dock.isHidden()
    modifiers = Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier
    qtbot.keyClick(slide_window.canvas, Qt.Key.Key_I, modifiers)
    assert not inspector.dock.isHidden()
    slide_window.canvas.fit_to_window()
    wait_settled(qtbot, inspector)
    return inspector


def wait_settled(qtbot, inspector):
    """Until the maps of the view as it is now are shown (the timer has fired and our jobs are back)."""
    qtbot.waitUntil(lambda: not inspector._timer.isActive() and not inspector._jobs
                    and inspector.inspection is not None, timeout=WAIT_MS)


def centre_of(rect):
    x, y, w, h = rect
    return x + w / 2, y + h / 2


def assert_region_at_view_centre(inspector, side=512):
    region = inspector.inspection.region
    cx, cy = inspector.view_centre()
    expected_x = min(max(int(cx - side / 2), 0), W - side)
    expected_y = min(max(int(cy - side / 2), 0), H - side)
    assert (region.w, region.h, region.step) == (side, side, 1)  # a model-sized tile at full resolution
    assert abs(region.x - expected_x) <= 1 and abs(region.y - expected_y) <= 1


def assert_maps_are_the_tiles(inspector, model):
    """The maps shown are the network's on that tile of the slide, not on the tile shown before."""
    region = inspector.inspection.region
    expected = inspect_slide(TapInspector(model, None), inspector.slide, centre_of(region.rect), region.w)
    assert expected.region.rect == region.rect
    for name in ("enc1", "logits"):
        np.testing.assert_allclose(inspector.inspection.taps[name].tensor, expected.taps[name].tensor,
                                   rtol=1e-4, atol=1e-4)


def drag_with_middle_button(canvas, start, end):
    viewport = canvas.viewport()
    QTest.mousePress(viewport, Qt.MouseButton.MiddleButton, Qt.KeyboardModifier.NoModifier, start)
    for t in (0.25, 0.5, 0.75, 1.0):
        QTest.mouseMove(viewport, start + (end - start) * t)
    QTest.mouseRelease(viewport, Qt.MouseButton.MiddleButton, Qt.KeyboardModifier.NoModifier, end)


def wheel(canvas, pos, notches):
    viewport = canvas.viewport()
    point = QPointF(pos)
    event = QWheelEvent(point, viewport.mapToGlobal(point), QPoint(), QPoint(0, 120 * notches),
                        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase,
                        False)
    QApplication.sendEvent(viewport, event)


def test_the_slide_inspector_follows_the_view_through_pan_wheel_and_keys(window, slide_window, qtbot):
    model, meta = tiny_rgb_unet()
    window.model_host.select((model, meta), "cpu")
    inspector = open_inspector(qtbot, slide_window)
    canvas = slide_window.canvas
    assert_region_at_view_centre(inspector)
    assert [what for what, _ in inspector.passes] == ["preview", "full"]  # a quick look first
    assert inspector.region_item.isVisible() and inspector.region_item.rect().width() == 512
    # A channel laid over the slide covers the tile, in the slide's own pixels.
    inspector.panel.channels.overlay_check.setChecked(True)
    heatmap = canvas.heatmap_item
    assert heatmap.isVisible()
    drawn = heatmap.sceneBoundingRect()
    x, y, w, h = inspector.inspection.region.rect
    assert (round(drawn.x()), round(drawn.y()), round(drawn.width()), round(drawn.height())) == (x, y, w, h)
    inspector.panel.channels.overlay_check.setChecked(False)

    # Pan: drag with the middle button; once the view rests the maps are those of the new centre.
    before = inspector.inspection.region.rect
    drag_with_middle_button(canvas, QPoint(600, 400), QPoint(400, 250))
    wait_settled(qtbot, inspector)
    assert inspector.inspection.region.rect != before
    assert_region_at_view_centre(inspector)
    assert_maps_are_the_tiles(inspector, model)

    # Zoom: three wheel notches near a corner in a row ask once, for where the view ends up.
    before, passes = inspector.inspection.region.rect, len(inspector.passes)
    for _ in range(3):
        wheel(canvas, QPoint(150, 120), 1)
    wait_settled(qtbot, inspector)
    assert inspector.inspection.region.rect != before
    assert [what for what, _ in inspector.passes[passes:]] == ["preview", "full"]
    assert_region_at_view_centre(inspector)
    assert_maps_are_the_tiles(inspector, model)

    # A smaller region asked for: the maps follow at once, for the same centre.
    size_combo = inspector.panel.size_combo
    size_combo.setCurrentIndex(size_combo.findData(256))
    wait_settled(qtbot, inspector)
    assert_region_at_view_centre(inspector, side=256)
    size_combo.setCurrentIndex(size_combo.findData(512))
    wait_settled(qtbot, inspector)

    # Keys: the arrow keys scroll the view, and the maps follow.
    before = inspector.inspection.region.rect
    canvas.setFocus()
    for _ in range(5):
        qtbot.keyClick(canvas, Qt.Key.Key_Right)
    wait_settled(qtbot, inspector)
    assert inspector.inspection.region.rect[0] > before[0]
    assert_region_at_view_centre(inspector)


def test_a_pass_for_a_view_the_user_left_is_stopped_and_never_shown(window, slide_window, qtbot):
    model, meta = tiny_rgb_unet()
    model.register_forward_pre_hook(lambda _module, _inputs: time.sleep(0.4))  # a pass takes a while
    window.model_host.select((model, meta), "cpu")
    inspector = open_inspector(qtbot, slide_window)
    canvas = slide_window.canvas
    drag_with_middle_button(canvas, QPoint(600, 400), QPoint(450, 300))
    qtbot.waitUntil(lambda: bool(inspector._jobs), timeout=WAIT_MS)  # the look at this view is out
    left_behind = list(inspector._jobs)
    left_centre = inspector.view_centre()
    drag_with_middle_button(canvas, QPoint(400, 300), QPoint(700, 500))
    qtbot.waitUntil(lambda: not inspector._timer.isActive(), timeout=WAIT_MS)
    assert all(job.cancel.is_set() for job in left_behind)
    shown_from = len(inspector.passes)
    wait_settled(qtbot, inspector)
    assert_region_at_view_centre(inspector)
    for _what, rect in inspector.passes[shown_from:]:
        cx, cy = centre_of(rect)
        assert abs(cx - left_centre[0]) > 100 or abs(cy - left_centre[1]) > 100


def test_a_closed_inspector_asks_nothing_of_the_model(window, slide_window, qtbot):
    model, meta = tiny_rgb_unet()
    window.model_host.select((model, meta), "cpu")
    submitted = []
    window.model_host.finished.connect(lambda job, _result: submitted.append(job.kind))
    drag_with_middle_button(slide_window.canvas, QPoint(600, 400), QPoint(400, 250))
    qtbot.wait(2 * 300 + 200)
    assert submitted == [] and slide_window.inspector.inspection is None


def test_ctrl_click_in_the_box_follows_the_pixel_and_says_why_it_got_its_class(window, slide_window, qtbot):
    model, meta = tiny_rgb_unet()
    window.model_host.select((model, meta), "cpu")
    inspector = open_inspector(qtbot, slide_window)
    canvas = slide_window.canvas
    x0, y0, w, h = inspector.inspection.region.rect
    where = canvas.mapFromScene(QPointF(x0 + w * 0.3, y0 + h * 0.6))
    pixel = canvas.mapToScene(where)
    slide_window.tools["brush"].trigger()  # the click goes to the inspector, not to the brush
    QTest.mouseClick(canvas.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.ControlModifier, where)
    assert inspector.probe is not None  # the Probe tab follows the pixel through every tap
    assert inspector.panel.tabs.currentIndex() == inspector.panel.WHY_TAB
    qtbot.waitUntil(lambda: inspector.explanation is not None, timeout=WAIT_MS)
    why = inspector.explanation
    assert (why.x, why.y) == (int(pixel.x()), int(pixel.y()))
    wx, wy, ww, wh = why.window  # read from the slide around the pixel, in level-0 pixels
    assert wx <= why.x < wx + ww and wy <= why.y < wy + wh
    assert why.sentences and f"Pixel ({why.x}, {why.y})" in inspector.panel.why.answer.text()
    assert slide_window.doc.undo_stack.count() == 0  # nothing painted


def test_closing_the_slide_window_during_a_look_calls_off_the_rest_and_the_app_keeps_working(
        window, slide_window, qtbot):
    model, meta = tiny_rgb_unet()
    ran = []

    def slow(_module, _inputs):
        ran.append(1)
        time.sleep(0.3)

    model.register_forward_pre_hook(slow)
    window.model_host.select((model, meta), "cpu")
    inspector = open_inspector(qtbot, slide_window)
    failures = []
    window.model_host.failed.connect(lambda job, message: failures.append(message))
    drag_with_middle_button(slide_window.canvas, QPoint(600, 400), QPoint(450, 300))
    qtbot.waitUntil(lambda: bool(inspector._jobs), timeout=WAIT_MS)
    out = list(inspector._jobs)
    slide_window.close()
    assert all(job.cancel.is_set() for job in out)
    qtbot.waitUntil(lambda: not window.model_host.busy(), timeout=WAIT_MS)
    passes = len(ran)
    qtbot.wait(500)
    assert failures == [] and len(ran) == passes  # nothing ran on for the closed window
    # The model host serves the main window as before.
    job = window.model_host.submit("describe", (model, meta), device="cpu")
    qtbot.waitUntil(lambda: job.job_id not in window.model_host.jobs, timeout=WAIT_MS)
    assert failures == []


def test_the_slide_inspectors_tap_and_view_are_saved_from_its_buttons(window, slide_window, qtbot, tmp_path,
                                                                       monkeypatch):
    from PySide6.QtWidgets import QFileDialog

    model, meta = tiny_rgb_unet()
    window.model_host.select((model, meta), "cpu")
    inspector = open_inspector(qtbot, slide_window)
    inspector.panel.select_tap("enc2")
    answers = iter([(str(tmp_path / "enc2"), "NumPy array (*.npy)"), (str(tmp_path / "view"), "PNG image (*.png)")])
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: next(answers))
    inspector.panel.save_tap_button.click()
    np.testing.assert_array_equal(np.load(tmp_path / "enc2.npy"), inspector.inspection.tap("enc2").tensor)
    inspector.panel.save_png_button.click()
    assert inspector.saving.last_saved == tmp_path / "view.png" and (tmp_path / "view.png").stat().st_size > 1000


def test_the_slide_inspector_shows_what_predict_was_told_to_feed_a_one_channel_model(window, slide_window, qtbot):
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QMessageBox

    from segstudio.core.model_fit import fed_definition

    torch.manual_seed(0)
    model = build_model("unet", in_channels=1, num_classes=2, depth=2, base_channels=4)
    meta = ModelMeta(name="tiny-grey", version=1, arch="unet", config=model.config, in_channels=1,
                     classes=[{"id": 0, "name": "background", "color": [0, 0, 0]},
                              {"id": 1, "name": "nucleus", "color": [255, 0, 0]}])
    window.model_host.select((model, meta), "cpu")
    slide_window.canvas.set_zoom(1.0)
    slide_window.canvas.centerOn(QPointF(1500, 1000))

    def answer_he():  # the question a colour slide asks at the first Predict with this model
        box = QApplication.activeModalWidget()
        if not isinstance(box, QMessageBox) or box.objectName() != "slideFeedQuestion":
            QTimer.singleShot(10, answer_he)
            return
        next(b for b in box.buttons() if b.text() == "Use the H&E path").click()

    QTimer.singleShot(0, answer_he)
    slide_window.prediction.actions["view"].trigger()  # Predict > Predict View
    qtbot.waitUntil(lambda: slide_window.prediction.job is None, timeout=WAIT_MS)
    inspector = slide_window.inspector
    inspector.show_action.trigger()  # Model > Look Inside the Network
    wait_settled(qtbot, inspector)
    region = inspector.inspection.region
    he = fed_definition(None, "he")
    fed = inspect_slide(TapInspector(model, None), inspector.slide, centre_of(region.rect), region.w, model_input=he)
    grey = inspect_slide(TapInspector(model, None), inspector.slide, centre_of(region.rect), region.w)
    shown = inspector.inspection.taps["enc1"].tensor
    np.testing.assert_allclose(shown, fed.taps["enc1"].tensor, rtol=1e-4, atol=1e-4)  # the hematoxylin
    assert not np.allclose(shown, grey.taps["enc1"].tensor, rtol=1e-3, atol=1e-3)  # not the grey mean
