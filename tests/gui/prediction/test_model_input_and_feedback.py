"""The Model panel says which channel feeds the model, warns about unlike images, shows maps with a legend,
and says what Predict found."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import tifffile
import torch
import torch.nn as nn
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from segstudio.synth.nuclei import generate_nuclei_image

CLASSES = [{"id": 0, "name": "background", "color": [0, 0, 0]}, {"id": 1, "name": "nucleus", "color": [255, 0, 0]}]


class EchoModel(nn.Module):
    """Keeps every input it is given; pixels brighter than mid-range are class 1."""

    def __init__(self):
        super().__init__()
        self.arch = "echo"
        self.config = {"in_channels": 1, "num_classes": 2}
        self.seen: list[torch.Tensor] = []

    def forward(self, x):
        self.seen.append(x.detach().float().cpu().clone())
        score = (x - 0.5) * 20.0
        return torch.cat([-score, score], dim=1)


@pytest.fixture
def echo(monkeypatch, tmp_path):
    """A listed one-channel nuclear fluorescence model whose forward pass echoes what Predict feeds it."""
    from segstudio.models import library
    from segstudio.models.checkpoint import ModelMeta, save_checkpoint
    from segstudio.models.registry import build_model

    resources = tmp_path / "resources"
    (resources / "models").mkdir(parents=True)
    expects = {"kind": "fluorescence", "stain": "nuclear"}
    model = build_model("unet", in_channels=1, num_classes=2, depth=2, base_channels=4)
    meta = ModelMeta(name="tiny", version=1, arch="unet", config=dict(model.config), classes=CLASSES, in_channels=1,
                     expects=expects)
    save_checkpoint(resources / "models" / "tiny.safetensors", model, meta)
    monkeypatch.setenv("SEGSTUDIO_RESOURCES", str(resources))
    net = EchoModel()
    monkeypatch.setattr(library.ModelLibrary, "load", lambda self, ref, device="cpu": (net, meta))
    return net


def choose(qtbot, combo, text):
    """Open the combo with the mouse and click the entry showing `text`."""
    index = combo.findText(text)
    assert index >= 0, [combo.itemText(i) for i in range(combo.count())]
    qtbot.mouseClick(combo, Qt.MouseButton.LeftButton)
    view = combo.view()
    qtbot.waitUntil(view.isVisible)
    qtbot.wait(QApplication.doubleClickInterval() + 50)  # the popup ignores a release right after it opens
    rect = view.visualRect(combo.model().index(index, 0))
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    qtbot.waitUntil(lambda: not view.isVisible())
    assert combo.currentIndex() == index


def click_predict(qtbot, window):
    with qtbot.waitSignal(window.model_host.finished, timeout=60_000):
        qtbot.mouseClick(window.prediction.panel.predict_button, Qt.MouseButton.LeftButton)


@pytest.fixture
def three_channel_tiff(tmp_path):
    """Channel 1: a square on the left; channel 2: two squares on the right; channel 3: dark."""
    planes = np.full((3, 48, 64), 100, np.uint16)
    planes[0, 10:30, 4:20] = 900
    planes[1, 5:15, 40:60] = 900
    planes[1, 30:44, 40:60] = 900
    path = tmp_path / "three.tif"
    tifffile.imwrite(path, planes, photometric="minisblack")
    return path


def test_a_three_channel_image_offers_its_channels_and_the_chosen_one_is_what_predict_feeds(
        window, qtbot, echo, three_channel_tiff):
    window.prediction.reload_models()
    (doc,) = window.open_paths([three_channel_tiff])
    panel = window.prediction.panel
    combo = panel.input_combo
    assert combo.isVisible() and combo.isEnabled()
    assert [combo.itemText(i) for i in range(combo.count())] == ["Channel 1", "Channel 2", "Channel 3"]
    assert combo.currentText() == "Channel 1" and "first" in panel.input_note.text()

    choose(qtbot, combo, "Channel 2")
    click_predict(qtbot, window)
    fed = torch.cat([x.flatten() for x in echo.seen])
    assert echo.seen[0].shape[1] == 1
    expected = np.zeros((48, 64), np.uint8)
    expected[5:15, 40:60] = 1
    expected[30:44, 40:60] = 1
    np.testing.assert_array_equal(doc.mask, expected)  # the mask follows channel 2, not the grey mean
    assert fed.max() == 1.0
    # The choice stays with the image.
    assert doc.model.model_channels == (1,) and combo.currentText() == "Channel 2"


def test_an_rgb_image_into_a_one_channel_model_is_warned_about(window, qtbot, echo, tmp_path):
    image, _, _ = generate_nuclei_image(5, height=96, width=96, bit_depth=8)
    path = tmp_path / "photo.png"
    cv2.imwrite(str(path), np.dstack([image // 3, image // 2, image]))
    window.prediction.reload_models()
    window.open_paths([path])
    panel = window.prediction.panel
    assert panel.input_combo.currentText() == "Grey (mean of R, G, B)"
    assert panel.input_warning.isVisible() and "colour image" in panel.input_warning.text()
    choose(qtbot, panel.input_combo, "B")  # the colour that shows the stain
    assert not panel.input_warning.isVisible()


def test_a_bright_background_image_warns_that_it_would_be_predicted_inverted(window, qtbot, echo, tmp_path):
    image, _, _ = generate_nuclei_image(7, height=96, width=96, bit_depth=8)
    dark_nuclei = tmp_path / "brightfield.tif"
    tifffile.imwrite(dark_nuclei, 255 - image)
    fluorescence = tmp_path / "fluorescence.tif"
    tifffile.imwrite(fluorescence, image)
    window.prediction.reload_models()
    window.open_paths([fluorescence])
    warning = window.prediction.panel.input_warning
    assert not warning.isVisible()
    window.open_paths([dark_nuclei])
    assert warning.isVisible() and "background instead of the objects" in warning.text()


def test_predict_says_how_many_objects_the_mask_holds(window, qtbot, echo, three_channel_tiff):
    window.prediction.reload_models()
    (doc,) = window.open_paths([three_channel_tiff])
    choose(qtbot, window.prediction.panel.input_combo, "Channel 2")
    click_predict(qtbot, window)
    count = cv2.connectedComponents((doc.mask == 1).astype(np.uint8), connectivity=8)[0] - 1
    share = round(100 * (doc.mask == 1).mean())
    assert count == 2
    message = window.statusBar().currentMessage()
    assert message.startswith(f"Predicted {count} nuclei ({share}% of the image) in ")
    assert message.split(" in ")[1].endswith(" s")
    assert window.prediction.panel.result_label.text() in message


def test_the_confidence_view_has_a_legend_its_own_opacity_and_outlines_the_mask(
        window, qtbot, echo, three_channel_tiff):
    window.prediction.reload_models()
    (doc,) = window.open_paths([three_channel_tiff])
    click_predict(qtbot, window)
    panel, canvas = window.prediction.panel, window.canvas
    assert not panel.colour_bar.isVisible() and not panel.map_opacity.isVisible()
    inside = canvas.overlay.rendered_rgba()[20, 10, 3]
    assert inside > 0  # the mask is drawn filled

    choose(qtbot, panel.overlay_combo, "Confidence")
    assert canvas.heatmap_item.isVisible()
    assert panel.colour_bar.isVisible() and "confidence, %" in panel.colour_bar.caption
    assert panel.colour_bar.ticks == ["0", "100"]
    shown = canvas.overlay.rendered_rgba()
    assert shown[20, 10, 3] == 0 and shown[10, 4, 3] > 0  # outline only
    assert canvas.overlay.zValue() > canvas.heatmap_item.zValue()
    assert canvas.heatmap_item.opacity() == pytest.approx(panel.map_opacity.value() / 100)
    panel.map_opacity.setFocus()
    before = canvas.heatmap_item.opacity()
    qtbot.keyClick(panel.map_opacity, Qt.Key.Key_PageDown)
    assert canvas.heatmap_item.opacity() < before
    assert canvas.heatmap_item.opacity() == pytest.approx(panel.map_opacity.value() / 100)

    choose(qtbot, panel.overlay_combo, "Uncertainty")
    assert "uncertainty" in panel.colour_bar.caption and panel.colour_bar.ticks == ["0", "1"]
    choose(qtbot, panel.overlay_combo, "Mask")
    assert not canvas.heatmap_item.isVisible() and not panel.colour_bar.isVisible()
    assert canvas.overlay.rendered_rgba()[20, 10, 3] == inside  # filled again


@pytest.mark.parametrize("writer", ["ome", "imagej"])
def test_a_stack_naming_its_dapi_channel_feeds_that_channel_by_default(window, qtbot, echo, tmp_path, writer):
    # Channel 1 (GFP) holds one square, channel 2 (DAPI) two: the nuclear model should see DAPI unasked.
    planes = np.full((2, 48, 64), 100, np.uint16)
    planes[0, 10:30, 4:20] = 900
    planes[1, 5:15, 40:60] = 900
    planes[1, 30:44, 40:60] = 900
    path = tmp_path / f"stack-{writer}.tif"
    if writer == "ome":
        tifffile.imwrite(path, planes, ome=True, metadata={"axes": "CYX", "Channel": {"Name": ["GFP", "DAPI"]}})
    else:
        tifffile.imwrite(path, planes, imagej=True, metadata={"axes": "CYX", "Labels": ["GFP", "DAPI"]})
    window.prediction.reload_models()
    (doc,) = window.open_paths([path])
    combo = window.prediction.panel.input_combo
    assert [combo.itemText(i) for i in range(combo.count())] == ["GFP", "DAPI"]
    assert combo.currentText() == "DAPI" and "nuclear stain" in window.prediction.panel.input_note.text()
    click_predict(qtbot, window)
    assert int(doc.mask[10, 50]) == 1 and int(doc.mask[20, 10]) == 0  # the DAPI squares, not the GFP one
