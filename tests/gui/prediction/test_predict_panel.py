"""Predict from the window: worker thread, overlay, confidence view, cancel, and hand-painted pixels kept."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn
from PySide6.QtCore import Qt

CLASSES = [{"id": 0, "name": "background", "color": [0, 0, 0]}, {"id": 1, "name": "nucleus", "color": [255, 0, 0]}]


class BrightIsNucleus(nn.Module):
    """A 'network' whose answer is known: pixels brighter than mid-range are class 1."""

    def __init__(self):
        super().__init__()
        self.arch = "bright"
        self.config = {"in_channels": 1, "num_classes": 2}

    def forward(self, x):
        score = (x - 0.5) * 20.0
        return torch.cat([-score, score], dim=1)


@pytest.fixture
def tiny_model(tmp_path, monkeypatch):
    """A real tiny U-Net saved as a bundled model, so the panel lists and loads it like any other."""
    from segstudio.models.checkpoint import ModelMeta, save_checkpoint
    from segstudio.models.registry import build_model

    resources = tmp_path / "resources"
    (resources / "models").mkdir(parents=True)
    torch.manual_seed(0)
    model = build_model("unet", in_channels=1, num_classes=2, depth=2, base_channels=4)
    meta = ModelMeta(name="tiny", version=1, arch="unet", config=dict(model.config), classes=CLASSES, in_channels=1)
    save_checkpoint(resources / "models" / "tiny.safetensors", model, meta)
    monkeypatch.setenv("SEGSTUDIO_RESOURCES", str(resources))
    return meta


@pytest.fixture
def known_answer(monkeypatch):
    """Route the library's load to a model with a known answer (keeps the real worker/thread path)."""
    from segstudio.models import library
    from segstudio.models.checkpoint import ModelMeta

    meta = ModelMeta(name="tiny", version=1, arch="unet", config={}, classes=CLASSES, in_channels=1)
    monkeypatch.setattr(library.ModelLibrary, "load", lambda self, ref, device="cpu": (BrightIsNucleus(), meta))


def click_predict(qtbot, window):
    with qtbot.waitSignal(window.model_host.finished, timeout=60_000):
        qtbot.mouseClick(window.prediction.panel.predict_button, Qt.MouseButton.LeftButton)


def test_predict_fills_the_overlay_from_the_worker(window, qtbot, tiny_model, dim16_tiff, known_answer):
    window.prediction.reload_models()
    assert window.prediction.panel.model_id() == "tiny/v1"
    (doc,) = window.open_paths([dim16_tiff])
    assert window.actions.predict.isEnabled()
    click_predict(qtbot, window)
    expected = np.zeros((48, 64), np.uint8)
    expected[10:30, 20:50] = 1  # the bright square of the fixture image
    np.testing.assert_array_equal(doc.mask, expected)
    alpha = window.canvas.overlay.rendered_rgba()[..., 3]
    assert (alpha[expected == 1] > 0).all() and (alpha[expected == 0] == 0).all()
    assert doc.status.value == "predicted" and doc.undo_stack.count() == 1
    # The status bar names where it ran: "Automatic" picks the GPU when there is one, else the CPU.
    from segstudio.engine.devices import device_label, pick_device

    assert window.status.device_label.text() == device_label(pick_device("auto"))
    # The confidence view shows a map over the image; switching back hides it.
    panel = window.prediction.panel
    assert panel.overlay_combo.isEnabled()
    panel.overlay_combo.setCurrentIndex(panel.overlay_combo.findData("confidence"))
    assert window.canvas.heatmap_item.isVisible()
    panel.overlay_combo.setCurrentIndex(panel.overlay_combo.findData("mask"))
    assert not window.canvas.heatmap_item.isVisible()
    # Predict is one undo step.
    window.actions.undo.trigger()
    assert not doc.mask.any()


def test_predict_again_keeps_hand_painted_pixels_unless_replace_all(
    window, qtbot, tiny_model, dim16_tiff, known_answer
):
    window.prediction.reload_models()
    (doc,) = window.open_paths([dim16_tiff])
    doc.mask[0:5, 0:5] = 1  # painted by hand where the network says background
    doc.hand[0:5, 0:5] = True
    doc.mask[15, 30] = 0  # erased by hand inside the bright square
    doc.hand[15, 30] = True
    click_predict(qtbot, window)
    assert (doc.mask[0:5, 0:5] == 1).all() and doc.mask[15, 30] == 0
    assert doc.mask[20, 40] == 1 and doc.mask[40, 5] == 0

    window.prediction.panel.replace_all.setChecked(True)
    click_predict(qtbot, window)
    assert (doc.mask[0:5, 0:5] == 0).all() and doc.mask[15, 30] == 1
    assert not doc.hand.any()


def test_real_tiny_model_runs_in_the_worker_and_window_stays_responsive(window, qtbot, tiny_model, dim16_tiff):
    window.prediction.reload_models()
    (doc,) = window.open_paths([dim16_tiff])
    seen = []
    window.model_host.progress.connect(lambda job, done, total: seen.append((done, total)))
    click_predict(qtbot, window)
    assert seen and seen[-1][0] == seen[-1][1]
    assert doc.prediction.labels.shape == (48, 64)
    assert doc.prediction.confidence.shape == (48, 64)
    np.testing.assert_array_equal(doc.mask, doc.prediction.labels)


def test_cancel_leaves_the_previous_mask(window, qtbot, tiny_model, dim16_tiff, monkeypatch):
    from segstudio.engine import predict as predict_module

    window.prediction.reload_models()
    (doc,) = window.open_paths([dim16_tiff])
    doc.mask[3:6, 3:6] = 1
    before = doc.mask.copy()

    def cancelled_predict(self, pixels, settings=None, progress=None, cancel=None):
        window.model_host.cancel()  # the user pressed Cancel while tiles were running
        assert cancel is not None and cancel()
        raise predict_module.PredictionCancelled()

    monkeypatch.setattr(predict_module.Predictor, "predict", cancelled_predict)
    with qtbot.waitSignal(window.model_host.cancelled, timeout=60_000):
        qtbot.mouseClick(window.prediction.panel.predict_button, Qt.MouseButton.LeftButton)
    np.testing.assert_array_equal(doc.mask, before)
    assert "cancelled" in window.statusBar().currentMessage()
    assert window.actions.predict.isEnabled()


def test_a_failing_model_is_reported_and_the_window_keeps_working(window, qtbot, tiny_model, dim16_tiff, monkeypatch):
    from segstudio.models import library

    def broken(self, ref, device="cpu"):
        raise ValueError("Cannot load model tiny.safetensors: file is truncated")

    monkeypatch.setattr(library.ModelLibrary, "load", broken)
    window.prediction.reload_models()
    window.open_paths([dim16_tiff])
    with qtbot.waitSignal(window.model_host.failed, timeout=60_000):
        qtbot.mouseClick(window.prediction.panel.predict_button, Qt.MouseButton.LeftButton)
    assert "truncated" in window.last_error and "dim16.tif" in window.last_error
    assert window.actions.predict.isEnabled()


def test_on_cpu_progress_and_cancel_come_after_every_tile(window, qtbot, tiny_model, tmp_path):
    import tifffile

    path = tmp_path / "wide.tif"
    tifffile.imwrite(path, (np.random.default_rng(0).random((64, 400)) * 1000).astype(np.uint16))
    window.prediction.reload_models()
    window.open_paths([path])
    window.prediction.panel.tile_spin.setValue(64)
    window.prediction.panel.device_combo.setCurrentIndex(window.prediction.panel.device_combo.findData("cpu"))
    seen = []
    window.model_host.progress.connect(lambda job, done, total: seen.append((done, total)))
    click_predict(qtbot, window)
    total = seen[-1][1]
    assert total > 4 and [d for d, _ in seen] == list(range(1, total + 1))


def test_classes_of_the_model_are_named_and_coloured_in_the_session(window, qtbot, tmp_path, monkeypatch, dim16_tiff):
    """A three-class model on a fresh session: every predicted id gets the model's name and a colour."""
    from segstudio.models.checkpoint import ModelMeta, save_checkpoint
    from segstudio.models.registry import build_model

    classes = CLASSES + [{"id": 2, "name": "mitosis", "color": [0, 255, 0]}]
    resources = tmp_path / "res3"
    (resources / "models").mkdir(parents=True)
    model = build_model("unet", in_channels=1, num_classes=3, depth=2, base_channels=4)
    meta = ModelMeta(name="three", version=1, arch="unet", config=dict(model.config), classes=classes, in_channels=1)
    save_checkpoint(resources / "models" / "three.safetensors", model, meta)
    monkeypatch.setenv("SEGSTUDIO_RESOURCES", str(resources))
    window.prediction.reload_models()
    window.open_paths([dim16_tiff])
    click_predict(qtbot, window)
    table = window.editing.classes.table
    assert table.get(2).name == "mitosis" and tuple(table.get(2).color) == (0, 255, 0)
    assert window.canvas.overlay._lut.shape[0] >= 3 and window.canvas.overlay._lut[2, 3] > 0


def test_escape_cancels_a_running_prediction(window, qtbot, tiny_model, dim16_tiff, monkeypatch):
    import time

    from segstudio.engine import predict as predict_module

    window.prediction.reload_models()
    (doc,) = window.open_paths([dim16_tiff])
    before = doc.mask.copy()

    def slow_predict(self, pixels, settings=None, progress=None, cancel=None):
        deadline = time.monotonic() + 30
        while not cancel():  # a long prediction that polls cancel between tiles
            if time.monotonic() > deadline:
                raise AssertionError("Esc never reached the worker")
            time.sleep(0.01)
        raise predict_module.PredictionCancelled()

    monkeypatch.setattr(predict_module.Predictor, "predict", slow_predict)
    qtbot.mouseClick(window.prediction.panel.predict_button, Qt.MouseButton.LeftButton)
    assert window.prediction.progress.isVisible() and not window.actions.predict.isEnabled()
    with qtbot.waitSignal(window.model_host.cancelled, timeout=30_000):
        qtbot.keyClick(window, Qt.Key.Key_Escape)
    np.testing.assert_array_equal(doc.mask, before)
    assert not window.prediction.progress.isVisible() and window.actions.predict.isEnabled()


def test_the_model_panel_says_what_a_models_score_was_measured_on(window, tmp_path, monkeypatch):
    """A bundled model's score was measured on generated test images; a fine-tuned version's on the images
    its training held back. The panel says which rather than calling both a validation score."""
    panel = window.prediction.panel
    assert window.prediction.select_model("nuclei-unet")
    from segstudio.models.library import ModelLibrary

    bundled = ModelLibrary().find("nuclei-unet").meta.metrics["mean_iou"]
    assert f"IoU) {bundled:.3f} on generated test images" in panel.model_info.text()
    assert "draws the borders between touching objects" in panel.model_info.text()
    from segstudio.core.paths import user_models_dir
    from segstudio.models.checkpoint import ModelMeta, save_checkpoint
    from segstudio.models.registry import build_model

    model = build_model("unet", in_channels=1, num_classes=2, depth=2, base_channels=4)
    meta = ModelMeta(name="mine", version=2, arch="unet", config=dict(model.config), classes=CLASSES, in_channels=1,
                     metrics={"mean_iou": 0.8})
    save_checkpoint(user_models_dir() / "mine" / "v2.safetensors", model, meta)
    window.prediction.reload_models()
    assert window.prediction.select_model("mine/v2")
    assert "IoU) 0.800 on the images its training held back" in panel.model_info.text()
    assert "borders" not in panel.model_info.text()
