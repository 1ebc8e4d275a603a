"""An image whose channels do not fit what a model reads: the Model panel says so before Predict, offers the
fix in one click where there is one, and Predict and the inspector feed the model what the panel shows."""
import numpy as np
import pytest
import tifffile
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from segstudio.engine.predict import Predictor, PredictSettings
from segstudio.models.library import ModelLibrary

pytestmark = pytest.mark.usefixtures("single_torch_thread")


def _stack(path, channels, seed=0):
    """A multichannel fluorescence-like TIFF whose channels differ (a model fed other channels answers otherwise)."""
    rng = np.random.default_rng(seed)
    planes = np.zeros((channels, 48, 64), np.uint16)
    for c in range(channels):
        planes[c] = rng.integers(50, 200, (48, 64))
        y, x = rng.integers(4, 30, 2)
        planes[c, y:y + 14, x:x + 20] += 2000 * (c + 1)
    tifffile.imwrite(path, planes, photometric="minisblack", metadata={"axes": "CYX"})
    return path


def _new_model(qtbot, window, pick_input, channels_text=""):
    window.actions.new_model.trigger()  # Model > New Model...
    qtbot.waitUntil(lambda: window.models.dialog is not None and window.models.dialog.isVisible())
    dialog = window.models.dialog
    dialog.input_combo.setCurrentIndex(dialog.input_combo.findData(pick_input))
    if channels_text:
        qtbot.keyClicks(dialog.channels_edit, channels_text)
    with qtbot.waitSignal(window.models.created, timeout=60_000) as made:
        qtbot.mouseClick(dialog.create_button, Qt.MouseButton.LeftButton)
    return made.args[0].meta.id


def _predict(qtbot, window):
    with qtbot.waitSignal(window.model_host.finished, timeout=120_000):
        qtbot.mouseClick(window.prediction.panel.predict_button, Qt.MouseButton.LeftButton)
    QApplication.processEvents()
    return window.current.prediction.confidence.astype(np.float32)


def _expected(model_id, pixels, panel, model_input=None):
    model, meta = ModelLibrary().load(model_id)
    settings = PredictSettings(tile=panel.tile_spin.value(), overlap=panel.overlap_spin.value(), device="cpu",
                               model_input=model_input)
    return Predictor(model, meta, device="cpu").predict(pixels, settings).confidence.astype(np.float32)


def _click_entry(qtbot, combo, text):
    """Click an entry of the combo's open list, as the user does."""
    qtbot.waitUntil(combo.view().isVisible)
    view = combo.view()
    row = combo.findText(text)
    assert row >= 0, [combo.itemText(i) for i in range(combo.count())]
    where = view.visualRect(view.model().index(row, 0)).center()
    QTest.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=where)
    qtbot.waitUntil(lambda: not view.isVisible())


def test_a_model_made_for_chosen_channels_is_fed_them_and_a_stack_without_them_offers_a_pick(window, qtbot, tmp_path):
    panel = window.prediction.panel
    four = _stack(tmp_path / "four.tif", 4)
    window.open_paths([four])
    model_id = _new_model(qtbot, window, "chosen", "1, 4")  # New Model: Input "Chosen channels...", 1 and 4
    assert ModelLibrary().find(model_id).meta.input == {"kind": "channels", "channels": [0, 3]}
    assert panel.input_combo.currentText() == "Channel 1, Channel 4" and not panel.input_warning.isVisible()
    assert panel.input_note.text() == "The model was made to read Channel 1, Channel 4."
    pixels = window.current.image.pixels
    seen = _predict(qtbot, window)
    np.testing.assert_allclose(seen, _expected(model_id, pixels, panel), atol=2e-3)  # its own definition
    assert not np.allclose(seen, _expected(model_id, pixels[..., :2], panel, {}), atol=2e-3)  # not channels 1, 2

    window.inspector.show_dock()  # Look Inside the Network sees what Predict fed
    qtbot.waitUntil(lambda: window.inspector.description is not None, timeout=60_000)
    qtbot.mouseClick(window.inspector.panel.compute_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.inspector.inspection is not None, timeout=60_000)
    from segstudio.engine.inspect import TapInspector

    model, meta = ModelLibrary().load(model_id)
    direct = TapInspector(model, meta, device="cpu").inspect(pixels, window.inspector.inspection.region)
    np.testing.assert_allclose(window.inspector.inspection.probabilities, direct.probabilities, atol=1e-3)

    window.open_paths([_stack(tmp_path / "three.tif", 3, seed=1)])  # a stack without channel 4
    assert panel.input_warning.isVisible()
    assert "made to read image channels 1 and 4, but this image has 3" in panel.input_warning.text()
    (fix,) = panel.fix_buttons
    assert fix.text() == "Pick channels"
    qtbot.mouseClick(fix, Qt.MouseButton.LeftButton)
    _click_entry(qtbot, panel.input_combo, "Channel 1, Channel 3")
    assert not panel.input_warning.isVisible() and panel.input_note.text() == "Your choice for this image."
    pixels = window.current.image.pixels
    seen = _predict(qtbot, window)
    np.testing.assert_allclose(seen, _expected(model_id, pixels[..., [0, 2]], panel, {}), atol=2e-3)


def test_an_h_and_e_model_says_at_once_that_a_grey_image_cannot_be_fed(window, qtbot, tmp_path):
    panel = window.prediction.panel
    tifffile.imwrite(tmp_path / "grey.tif", np.random.default_rng(0).integers(0, 255, (40, 40), np.uint8))
    window.open_paths([tmp_path / "grey.tif"])
    _new_model(qtbot, window, "he")
    assert panel.input_warning.isVisible() and not panel.fix_buttons
    assert "reads the hematoxylin of H&E colour images, but this image has 1 channel" in panel.input_warning.text()


def test_a_one_channel_model_made_for_green_is_fed_green_not_grey(window, qtbot, tmp_path):
    import cv2

    panel = window.prediction.panel
    rng = np.random.default_rng(2)
    colour = rng.integers(0, 120, (48, 64, 3)).astype(np.uint8)
    colour[10:30, 10:40, 1] = 250
    cv2.imwrite(str(tmp_path / "colour.png"), colour)
    from segstudio.cli import main

    assert main(["models", "new", "green", "--arch", "unet", "--classes", "nucleus", "--input", "channels:1"]) == 0
    window.prediction.reload_models(select="green/v1")
    window.open_paths([tmp_path / "colour.png"])
    assert panel.input_combo.currentText() == "G" and not panel.input_warning.isVisible()
    pixels = window.current.image.pixels
    seen = _predict(qtbot, window)
    np.testing.assert_allclose(seen, _expected("green/v1", pixels[..., 1], panel), atol=2e-3)
