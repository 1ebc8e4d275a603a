"""Compare two models on one image from the Model dock: both predict, the canvas flips between their
predictions, the counts say which needed fewer corrections, and the user's mask is never touched."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn
from PySide6.QtCore import QPointF, Qt
from PySide6.QtWidgets import QApplication

from tests.gui.conftest import TINY_CLASSES, save_tiny

LEFT = Qt.MouseButton.LeftButton


class Threshold(nn.Module):
    """A 'network' with a known answer: pixels brighter than `level` (of the normalised input) are class 1."""

    def __init__(self, level: float):
        super().__init__()
        self.level = level
        self.arch = "threshold"
        self.config = {"in_channels": 1, "num_classes": 2}

    def forward(self, x):
        score = (x - self.level) * 20.0
        return torch.cat([-score, score], dim=1)


@pytest.fixture
def two_models(tmp_path, monkeypatch):
    """Bundled "exact" (finds the bright square) and "greedy" (calls everything a nucleus)."""
    from segstudio.models import library
    from segstudio.models.checkpoint import ModelMeta

    resources = tmp_path / "resources"
    (resources / "models").mkdir(parents=True)
    ids = [save_tiny(resources, "exact"), save_tiny(resources, "greedy")]
    monkeypatch.setenv("SEGSTUDIO_RESOURCES", str(resources))
    answers = {"exact": 0.5, "greedy": -1.0}

    def load(self, ref, device="cpu"):
        name = self.find(ref).meta.name
        meta = ModelMeta(name=name, version=1, arch="unet", config={}, classes=TINY_CLASSES, in_channels=1)
        return Threshold(answers[name]), meta

    monkeypatch.setattr(library.ModelLibrary, "load", load)
    return ids


def view_point(window, x, y):
    return window.canvas.mapFromScene(QPointF(x + 0.5, y + 0.5))


def drag(qtbot, window, pixels):
    viewport = window.canvas.viewport()
    qtbot.mousePress(viewport, LEFT, pos=view_point(window, *pixels[0]))
    for x, y in pixels[1:]:
        qtbot.mouseMove(viewport, view_point(window, x, y))
    qtbot.mouseRelease(viewport, LEFT, pos=view_point(window, *pixels[-1]))


def shown_labels(window):
    """What the overlay draws: 1 where a pixel is coloured (class 1 is the only coloured class here)."""
    return (window.canvas.overlay.rendered_rgba()[..., 3] > 0).astype(np.uint8)


def settle(qtbot, window):
    qtbot.waitUntil(lambda: not window.model_host.busy(), timeout=60_000)
    QApplication.processEvents()


def compare_with(window, qtbot, monkeypatch, second: str) -> dict[str, dict]:
    """Pick `second` under Compare two models and click Compare; returns what each model's job was given."""
    fed: dict[str, dict] = {}
    submit = window.model_host.submit

    def recording(kind, model_id, **job):
        fed[model_id] = job
        return submit(kind, model_id, **job)

    monkeypatch.setattr(window.model_host, "submit", recording)
    panel = window.prediction.compare.panel
    panel.second_combo.setCurrentIndex(panel.second_combo.findData(second))
    qtbot.mouseClick(panel.compare_button, LEFT)
    qtbot.waitUntil(lambda: not window.model_host.busy(), timeout=120_000)
    QApplication.processEvents()
    return fed


@pytest.fixture
def predicted(window, qtbot, two_models, dim16_tiff):
    """The square image predicted by "exact", then corrected by hand with a brush stroke on the background."""
    window.prediction.reload_models()
    window.prediction.select_model("exact/v1")
    (doc,) = window.open_paths([dim16_tiff])
    QApplication.processEvents()
    with qtbot.waitSignal(window.model_host.finished, timeout=60_000):
        qtbot.mouseClick(window.prediction.panel.predict_button, LEFT)
    window.editing.select_tool("brush")
    window.editing.session.set_brush_radius(1)
    drag(qtbot, window, [(4, 40), (12, 40)])
    assert doc.hand.any()
    return doc


def test_compare_predicts_both_without_touching_the_mask_and_counts_corrections(window, qtbot, predicted):
    doc = predicted
    compare = window.prediction.compare
    panel = compare.panel
    assert panel.second_id() == "greedy/v1"  # the first model other than the one chosen above
    mask_before, hand_before = doc.mask.copy(), doc.hand.copy()
    steps_before = doc.undo_stack.count()

    qtbot.mouseClick(panel.compare_button, LEFT)
    settle(qtbot, window)

    np.testing.assert_array_equal(doc.mask, mask_before)
    np.testing.assert_array_equal(doc.hand, hand_before)
    assert doc.undo_stack.count() == steps_before
    # "exact" differs from the mask only where the user painted; "greedy" everywhere the mask is background.
    exact = int(np.count_nonzero(doc.hand & (doc.mask == 1)))
    greedy = int(np.count_nonzero(doc.mask == 0))
    text = panel.result.text()
    assert f"A (exact v1): your mask differs from its prediction in {exact:,} pixels" in text
    assert f"B (greedy v1): your mask differs from its prediction in {greedy:,} pixels" in text
    assert "A (exact v1) needed fewer corrections" in text
    assert "exact v1" in panel.view_buttons["a"].toolTip() and "greedy v1" in panel.view_buttons["b"].toolTip()


def test_switching_views_shows_each_prediction_and_your_mask_again(window, qtbot, predicted):
    doc = predicted
    compare = window.prediction.compare
    window.prediction.compare.compare_action.trigger()  # Model > Compare with Second Model
    settle(qtbot, window)
    square = np.zeros_like(doc.mask)
    square[10:30, 20:50] = 1

    np.testing.assert_array_equal(shown_labels(window), doc.mask)
    compare.switch_action.trigger()  # Shift+M: model A's prediction
    np.testing.assert_array_equal(shown_labels(window), square)
    assert compare.panel.view_buttons["a"].isChecked()
    compare.switch_action.trigger()  # model B's: everything a nucleus
    assert shown_labels(window).all()
    compare.switch_action.trigger()  # back to your mask, corrections included
    np.testing.assert_array_equal(shown_labels(window), doc.mask)
    assert compare.panel.view_buttons["mask"].isChecked()

    qtbot.mouseClick(compare.panel.view_buttons["b"], LEFT)
    assert shown_labels(window).all()
    qtbot.mouseClick(compare.panel.view_buttons["mask"], LEFT)
    np.testing.assert_array_equal(shown_labels(window), doc.mask)
    window.canvas.setFocus()
    qtbot.keyClick(window.canvas, Qt.Key.Key_M, Qt.KeyboardModifier.ShiftModifier)  # the key itself
    assert compare.view == "a"
    np.testing.assert_array_equal(shown_labels(window), square)


def test_nothing_is_painted_under_a_shown_prediction_and_an_undo_shows_the_mask(window, qtbot, predicted):
    doc = predicted
    compare = window.prediction.compare
    compare.compare_action.trigger()
    settle(qtbot, window)
    mask_before = doc.mask.copy()
    qtbot.mouseClick(compare.panel.view_buttons["a"], LEFT)

    drag(qtbot, window, [(2, 2), (10, 2)])  # the brush is put aside: the drag pans
    np.testing.assert_array_equal(doc.mask, mask_before)

    window.actions.undo.trigger()  # takes the brush stroke back; the canvas shows the mask at once
    assert compare.view == "mask" and compare.panel.view_buttons["mask"].isChecked()
    np.testing.assert_array_equal(shown_labels(window), doc.mask)
    assert not doc.hand.any()
    drag(qtbot, window, [(2, 2), (10, 2)])  # the brush is back
    assert doc.mask[2, 2:11].all()
    # After the undo "exact" matches the mask except for the new stroke; the counts follow the edits.
    qtbot.waitUntil(lambda: "A (exact v1) needed fewer corrections" in compare.panel.result.text(), timeout=5000)
    painted = int(np.count_nonzero(doc.hand))
    assert f"A (exact v1): your mask differs from its prediction in {painted:,} pixels" in compare.panel.result.text()


def test_compare_with_the_same_model_twice_says_so(window, qtbot, predicted):
    compare = window.prediction.compare
    compare.panel.second_combo.setCurrentIndex(compare.panel.second_combo.findData("exact/v1"))
    qtbot.mouseClick(compare.panel.compare_button, LEFT)
    assert not window.model_host.busy()
    assert "other than the one chosen above" in compare.panel.result.text()


def test_the_bundled_models_are_listed_and_compare_on_a_generated_image(window, qtbot, tmp_path):
    import tifffile

    from segstudio import synth

    image, _, _ = synth.generate_nuclei_image(9_000_303, height=96, width=96, bit_depth=16)
    path = tmp_path / "nuclei.tif"
    tifffile.imwrite(path, image)
    window.prediction.reload_models()
    panel = window.prediction.panel
    listed = [panel.model_combo.itemData(i) for i in range(panel.model_combo.count())]
    assert {"nuclei-unet/v1", "nuclei-fcn8s/v1", "nuclei-deeplabv3plus/v1"} <= set(listed)
    assert panel.model_id() == "nuclei-unet/v1"
    (doc,) = window.open_paths([path])
    compare = window.prediction.compare
    compare.panel.second_combo.setCurrentIndex(compare.panel.second_combo.findData("nuclei-fcn8s/v1"))
    qtbot.mouseClick(compare.panel.compare_button, LEFT)
    settle(qtbot, window)
    assert not doc.mask.any()  # nothing predicted into the mask
    text = compare.panel.result.text()
    assert "A (nuclei-unet v1): your mask differs" in text and "B (nuclei-fcn8s v1): your mask differs" in text
    compare.switch_action.trigger()
    assert shown_labels(window).mean() > 0.05  # the U-Net's nuclei are shown


def test_the_second_model_is_fed_as_it_reads_images_not_with_the_first_models_channel(window, qtbot, tmp_path,
                                                                                      monkeypatch):
    """The channel picked for a one-channel model is that model's choice: a three-channel model compared
    with it still gets all three channels of the colour image."""
    import cv2

    resources = tmp_path / "resources"
    (resources / "models").mkdir(parents=True)
    save_tiny(resources, "grey")
    save_tiny(resources, "colour", in_channels=3)
    monkeypatch.setenv("SEGSTUDIO_RESOURCES", str(resources))
    image = np.zeros((48, 64, 3), np.uint8)
    image[10:30, 20:50] = (200, 90, 40)
    path = tmp_path / "colour.png"
    cv2.imwrite(str(path), image)
    window.prediction.reload_models()
    assert window.prediction.select_model("grey/v1")
    window.open_paths([path])
    panel = window.prediction.panel
    items = [panel.input_combo.itemText(i) for i in range(panel.input_combo.count())]
    combo = panel.input_combo  # the user picks the green channel for the grey model, with the arrow keys
    combo.setFocus()
    for _ in range(items.index("G") - combo.currentIndex()):
        qtbot.keyClick(combo, Qt.Key.Key_Down)
    assert combo.currentText() == "G" and window.current.model.model_channels == (1,)
    fed = compare_with(window, qtbot, monkeypatch, "colour/v1")
    assert fed["grey/v1"]["pixels"].shape[2:] in ((), (1,))  # the picked channel only
    assert fed["colour/v1"]["pixels"].shape == (48, 64, 3)
    assert "B (colour v1)" in window.prediction.compare.panel.result.text()
