"""An H&E slide with the fluorescence nuclei model: the panel says so, one click takes the H&E path, and
Predict then finds the nuclei."""
import cv2
import pytest
from PySide6.QtCore import Qt

from segstudio.core import paths
from segstudio.core.model_fit import HE_LABEL
from segstudio.synth import iou

pytestmark = pytest.mark.usefixtures("single_torch_thread")


def open_he_sample_on_the_he_path(window, qtbot) -> None:
    """File > Open Sample > he_nuclei.png, then the Model panel's "Use the H&E path"."""
    action = next(a for a in window.menus["samples"].actions() if a.text() == "he_nuclei.png")
    action.trigger()
    qtbot.waitUntil(lambda: window.current is not None, timeout=30_000)
    (fix,) = window.prediction.panel.fix_buttons
    qtbot.mouseClick(fix, Qt.MouseButton.LeftButton)


def test_open_sample_h_and_e_then_one_click_fix_then_predict(window, qtbot):
    panel = window.prediction.panel
    assert window.prediction.model_id() == "nuclei-unet/v1"
    action = next(a for a in window.menus["samples"].actions() if a.text() == "he_nuclei.png")
    action.trigger()  # File > Open Sample > he_nuclei.png
    qtbot.waitUntil(lambda: window.current is not None, timeout=30_000)
    assert panel.input_combo.currentText().startswith("Grey")
    assert panel.input_warning.isVisible() and "H&E" in panel.input_warning.text()
    (fix,) = panel.fix_buttons
    assert fix.text() == "Use the H&E path"
    qtbot.mouseClick(fix, Qt.MouseButton.LeftButton)
    assert panel.input_combo.currentText() == HE_LABEL
    assert not panel.input_warning.isVisible() and not panel.fix_buttons
    assert window.current.model.model_stain == "he"
    with qtbot.waitSignal(window.model_host.finished, timeout=120_000):
        qtbot.mouseClick(panel.predict_button, Qt.MouseButton.LeftButton)
    truth = cv2.imread(str(paths.samples_dir() / "truth" / "he_nuclei.png"), cv2.IMREAD_UNCHANGED) > 0
    assert iou(window.current.mask > 0, truth) > 0.5


def test_pick_a_channel_fix_opens_the_channel_list(window, qtbot, tmp_path):
    import numpy as np

    from segstudio.synth import generate_nuclei_image

    image, _, _ = generate_nuclei_image(2, height=96, width=96, bit_depth=8)
    colour = np.stack([image, image // 2, image // 3], axis=-1)  # a fluorescence-like colour picture
    path = tmp_path / "colour.png"
    cv2.imwrite(str(path), colour)
    window.open_paths([path])
    panel = window.prediction.panel
    (fix,) = panel.fix_buttons
    assert fix.text() == "Pick a channel"
    qtbot.mouseClick(fix, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(panel.input_combo.view().isVisible)
    panel.input_combo.hidePopup()


def test_the_h_and_e_choice_for_an_image_comes_back_with_its_project(make_window, qtbot, tmp_path, monkeypatch):
    from segstudio.gui import session as session_module

    window = make_window()
    open_he_sample_on_the_he_path(window, qtbot)
    folder = tmp_path / "project"
    monkeypatch.setattr(session_module.QFileDialog, "getExistingDirectory", lambda *a, **k: str(folder))
    window.actions.save_project.trigger()  # File > Save Project
    window.close()

    again = make_window()
    again.actions.open_project.trigger()  # File > Open Project
    qtbot.waitUntil(lambda: again.current is not None, timeout=30_000)
    assert again.current.model.model_stain == "he"
    assert again.prediction.panel.input_combo.currentText() == HE_LABEL
    assert again.prediction.panel.input_note.text() == "Your choice for this image."


def test_the_inspector_sees_the_h_and_e_image_as_predict_feeds_it(window, qtbot):
    """After "Use the H&E path" the inspector's pass runs on the hematoxylin too, not on the grey mean."""
    import numpy as np

    from segstudio.core.model_fit import HE_STAIN_VECTORS
    from segstudio.engine.inspect import TapInspector
    from segstudio.models.library import ModelLibrary

    open_he_sample_on_the_he_path(window, qtbot)
    window.inspector.show_dock()
    qtbot.waitUntil(lambda: window.inspector.description is not None, timeout=60_000)
    qtbot.mouseClick(window.inspector.panel.compute_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.inspector.inspection is not None, timeout=60_000)
    seen = window.inspector.inspection

    model, meta = ModelLibrary().load("nuclei-unet")
    direct = TapInspector(model, meta, device="cpu")
    pixels = window.current.image.pixels
    direct.model_input = {"kind": "he", "stain_vectors": [list(v) for v in HE_STAIN_VECTORS]}
    as_predict = direct.inspect(pixels, seen.region).probabilities
    direct.model_input = None
    as_grey = direct.inspect(pixels, seen.region).probabilities
    np.testing.assert_allclose(seen.probabilities, as_predict, atol=1e-3)
    assert np.abs(seen.probabilities - as_grey).max() > 0.1


def test_a_model_compared_on_the_h_and_e_path_is_fed_the_same_way(window, qtbot, monkeypatch):
    """Both bundled nuclei models read one grey channel: the H&E path chosen for one is used for the other."""
    from tests.gui.prediction.test_compare_models import compare_with

    open_he_sample_on_the_he_path(window, qtbot)
    fed = compare_with(window, qtbot, monkeypatch, "nuclei-deeplabv3plus/v1")
    assert {model: job["settings"].model_input["kind"] for model, job in fed.items()} == {
        "nuclei-unet/v1": "he", "nuclei-deeplabv3plus/v1": "he"}
