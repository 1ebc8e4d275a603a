"""Model > New Model: pick the network, the input, the classes and the start; the model is listed at once."""
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QMessageBox

from segstudio.models.library import ModelLibrary

pytestmark = pytest.mark.usefixtures("single_torch_thread")


def _dialog(qtbot, window):
    window.actions.new_model.trigger()  # Model > New Model...
    qtbot.waitUntil(lambda: window.models.dialog is not None and window.models.dialog.isVisible())
    return window.models.dialog


def _pick(combo, data):
    index = combo.findData(data)
    assert index >= 0, [combo.itemData(i) for i in range(combo.count())]
    combo.setCurrentIndex(index)


def test_new_model_from_the_menu_is_listed_and_selected(window, qtbot, tmp_path, monkeypatch):
    from tests.gui.conftest import save_tiny

    resources = tmp_path / "resources"
    (resources / "models").mkdir(parents=True)
    save_tiny(resources, "tiny")
    monkeypatch.setenv("SEGSTUDIO_RESOURCES", str(resources))
    window.prediction.reload_models()
    window.editing.classes.add("mitochondrion")
    dialog = _dialog(qtbot, window)
    assert "nucleus, mitochondrion" in dialog.classes_label.text()
    _pick(dialog.arch_combo, "fcn8s")
    assert "M weights" in dialog.arch_info.text() and "per 512 x 512 tile" in dialog.arch_info.text()
    _pick(dialog.input_combo, "he")
    dialog.name_edit.clear()
    qtbot.keyClicks(dialog.name_edit, "tiny")
    assert not dialog.create_button.isEnabled() and "exists already" in dialog.problem.text()
    dialog.name_edit.clear()
    qtbot.keyClicks(dialog.name_edit, "he-mito")
    with qtbot.waitSignal(window.models.created, timeout=60_000):
        qtbot.mouseClick(dialog.create_button, Qt.MouseButton.LeftButton)
    assert window.prediction.model_id() == "he-mito/v1"
    meta = ModelLibrary().find("he-mito/v1").meta
    assert meta.arch == "fcn8s" and meta.input["kind"] == "he" and meta.version == 1
    assert [c["name"] for c in meta.classes] == ["background", "nucleus", "mitochondrion"]
    box = next(w for w in QApplication.topLevelWidgets() if w.objectName() == "modelReadyDialog")
    assert "he-mito/v1 is ready" in box.text()


def test_start_from_an_existing_model_keeps_its_weights(window, qtbot, tmp_path, monkeypatch):
    import torch

    from tests.gui.conftest import save_tiny

    resources = tmp_path / "resources"
    (resources / "models").mkdir(parents=True)
    save_tiny(resources, "tiny")
    monkeypatch.setenv("SEGSTUDIO_RESOURCES", str(resources))
    window.prediction.reload_models()
    dialog = _dialog(qtbot, window)
    _pick(dialog.arch_combo, "unet")
    _pick(dialog.start_combo, "model:tiny/v1")
    assert "kept where they fit" in dialog.start_info.text()
    imagenet = [dialog.start_combo.itemData(i) for i in range(dialog.start_combo.count())]
    assert "imagenet" not in imagenet  # U-Net has no ImageNet encoder
    with qtbot.waitSignal(window.models.created, timeout=60_000) as signal:
        qtbot.mouseClick(dialog.create_button, Qt.MouseButton.LeftButton)
    result = signal.args[0]
    assert result.meta.parent == "tiny/v1" and "weight tensors unchanged" in window.models.last_message
    new, _ = ModelLibrary().load(result.meta.id)
    old, _ = ModelLibrary().load("tiny/v1")
    assert torch.equal(new.head.weight, old.head.weight)


def test_export_then_import_from_the_model_menu(window, qtbot, tmp_path, monkeypatch):
    from tests.gui.conftest import save_tiny

    resources = tmp_path / "resources"
    (resources / "models").mkdir(parents=True)
    save_tiny(resources, "tiny")
    monkeypatch.setenv("SEGSTUDIO_RESOURCES", str(resources))
    window.prediction.reload_models()
    shared = tmp_path / "shared"
    shared.mkdir()
    dialogs = "segstudio.gui.models.controller.QFileDialog"
    monkeypatch.setattr(f"{dialogs}.getExistingDirectory", lambda *a, **k: str(shared))
    no = lambda *a, **k: QMessageBox.StandardButton.No  # noqa: E731 - asked only where onnx is installed
    monkeypatch.setattr("segstudio.gui.models.controller.QMessageBox.question", no)
    with qtbot.waitSignal(window.models.created, timeout=60_000):
        window.actions.export_model.trigger()  # Model > Export Model...
    assert sorted(p.name for p in shared.iterdir()) == ["tiny-v1.json", "tiny-v1.safetensors"]
    monkeypatch.setattr(f"{dialogs}.getOpenFileName", lambda *a, **k: (str(shared / "tiny-v1.safetensors"), ""))
    with qtbot.waitSignal(window.models.created, timeout=60_000):
        window.actions.import_model.trigger()  # Model > Import Model...
    assert window.prediction.model_id() == "tiny-2/v1"
    assert ModelLibrary().find("tiny-2/v1").meta.training["original_id"] == "tiny/v1"


def test_an_h_and_e_model_takes_the_lab_stain_vectors_typed_in_the_dialog(window, qtbot):
    dialog = _dialog(qtbot, window)
    assert not dialog.stains_edit.isVisible()  # only an H&E input has stain vectors
    _pick(dialog.input_combo, "he")
    assert dialog.stains_edit.isVisible() and "0.65,0.70,0.29" in dialog.stains_edit.placeholderText()
    qtbot.keyClicks(dialog.stains_edit, "0.6,0.75,0.28; 0.6,0.75,0.28; 0.3,0.5,0.8")
    assert not dialog.create_button.isEnabled() and "the same colour" in dialog.problem.text()
    dialog.stains_edit.clear()
    qtbot.keyClicks(dialog.stains_edit, "0.6,0.75,0.28; 0.1,0.95,0.2; 0.3,0.5,0.8")
    assert dialog.create_button.isEnabled() and not dialog.problem.text()
    name = dialog.name_edit.text()
    with qtbot.waitSignal(window.models.created, timeout=60_000):
        qtbot.mouseClick(dialog.create_button, Qt.MouseButton.LeftButton)
    meta = ModelLibrary().find(f"{name}/v1").meta
    assert meta.input == {"kind": "he", "stain_vectors": [[0.6, 0.75, 0.28], [0.1, 0.95, 0.2], [0.3, 0.5, 0.8]]}
    assert window.prediction.model_id() == f"{name}/v1"


def test_a_start_that_makes_a_large_network_says_how_long_before_it_begins(window, qtbot, monkeypatch, tmp_path):
    weights = tmp_path / "vgg16-397923af.pth"
    weights.write_bytes(b"")
    monkeypatch.setattr("segstudio.models.backbones.imagenet_weights_available", lambda arch: weights)
    dialog = _dialog(qtbot, window)
    _pick(dialog.arch_combo, "fcn8s")
    assert "Making it takes" not in dialog.start_info.text()  # the default size is made in a moment
    _pick(dialog.start_combo, "imagenet")
    assert "134.3 M weights (537 MB)" in dialog.start_combo.currentText()
    assert dialog.start_info.text().endswith("Making it takes about 11 s.")
    _pick(dialog.arch_combo, "deconvnet")
    _pick(dialog.start_combo, "imagenet")
    assert dialog.start_info.text().endswith("Making it takes about 20 s.")
    dialog.reject()


def test_export_also_writes_onnx_when_asked_and_it_runs_in_onnxruntime(window, qtbot, tmp_path, monkeypatch):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    import numpy as np
    import torch

    from tests.gui.conftest import save_tiny

    resources = tmp_path / "resources"
    (resources / "models").mkdir(parents=True)
    save_tiny(resources, "tiny")
    monkeypatch.setenv("SEGSTUDIO_RESOURCES", str(resources))
    window.prediction.reload_models(select="tiny/v1")
    monkeypatch.setattr("segstudio.gui.models.controller.QFileDialog.getExistingDirectory",
                        lambda *a, **k: str(tmp_path / "out"))
    asked = []
    monkeypatch.setattr("segstudio.gui.models.controller.QMessageBox.question",
                        lambda parent, title, text, *a: asked.append(text) or QMessageBox.StandardButton.Yes)
    with qtbot.waitSignal(window.models.created, timeout=120_000):
        window.actions.export_model.trigger()  # Model > Export Model..., then Yes to ONNX
    assert "ONNX" in asked[0]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["tiny-v1.json", "tiny-v1.onnx",
                                                                     "tiny-v1.safetensors"]
    x = np.random.default_rng(0).random((1, 1, 64, 96), dtype=np.float32)
    (logits,) = ort.InferenceSession(str(tmp_path / "out" / "tiny-v1.onnx")).run(None, {"image": x})
    model, _ = ModelLibrary().load("tiny/v1")
    with torch.no_grad():
        np.testing.assert_allclose(logits, model(torch.from_numpy(x)).numpy(), atol=1e-4)


def test_each_network_shows_its_time_per_tile_measured_on_this_computer_once(window, qtbot, monkeypatch):
    measured = []
    monkeypatch.setattr("segstudio.gui.models.controller._tile_seconds",
                        lambda arch: measured.append(arch) or {"unet": 0.42, "pspnet": 1.25}[arch])
    dialog = _dialog(qtbot, window)
    _pick(dialog.arch_combo, "unet")
    qtbot.waitUntil(lambda: "about 0.4 s per 512 x 512 tile on this computer's CPU" in dialog.arch_info.text())
    _pick(dialog.arch_combo, "pspnet")
    assert "Measuring its time on this computer" in dialog.arch_info.text()
    assert "on a 2-core VM's CPU" in dialog.arch_info.text()  # the catalogue's figure meanwhile
    qtbot.waitUntil(lambda: "about 1.2 s per 512 x 512 tile on this computer's CPU" in dialog.arch_info.text())
    dialog.reject()
    dialog = _dialog(qtbot, window)  # opened again: remembered, not measured again
    _pick(dialog.arch_combo, "pspnet")
    assert "about 1.2 s per 512 x 512 tile on this computer's CPU" in dialog.arch_info.text()
    assert sorted(measured) == ["pspnet", "unet"]
    dialog.reject()


def test_the_time_per_tile_is_a_real_forward_pass():
    from segstudio.engine.new_model import tile_seconds

    assert 0 < tile_seconds("unet", repeats=1) < 120
