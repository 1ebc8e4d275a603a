import numpy as np
import pytest
import tifffile

TINY_CLASSES = [{"id": 0, "name": "background", "color": [0, 0, 0]}, {"id": 1, "name": "nucleus", "color": [255, 0, 0]}]


@pytest.fixture
def window(make_window):
    return make_window()


@pytest.fixture
def dim16_tiff(tmp_path):
    """A dim 16-bit image: a bright square (400) on a dark background (100), raw values nearly black."""
    img = np.full((48, 64), 100, np.uint16)
    img[10:30, 20:50] = 400
    path = tmp_path / "dim16.tif"
    tifffile.imwrite(path, img)
    return path


def save_tiny(resources, name, in_channels=1):
    """A tiny U-Net saved as a bundled model named `name`; returns its library id."""
    import torch

    from segstudio.models.checkpoint import ModelMeta, save_checkpoint
    from segstudio.models.registry import build_model

    torch.manual_seed(0)
    model = build_model("unet", in_channels=in_channels, num_classes=2, depth=2, base_channels=4)
    meta = ModelMeta(name=name, version=1, arch="unet", config=dict(model.config), classes=TINY_CLASSES,
                     in_channels=in_channels)
    save_checkpoint(resources / "models" / f"{name}.safetensors", model, meta)
    return f"{name}/v1"


@pytest.fixture
def counted_library(tmp_path, monkeypatch):
    """Two tiny bundled models; every load is counted and every forward pass records which module ran."""
    from segstudio.models import library as library_module

    resources = tmp_path / "resources"
    (resources / "models").mkdir(parents=True)
    ids = [save_tiny(resources, "tiny"), save_tiny(resources, "other")]
    monkeypatch.setenv("SEGSTUDIO_RESOURCES", str(resources))
    real_load = library_module.ModelLibrary.load
    record = {"loaded": [], "ran": [], "ids": ids}

    def counting_load(self, ref, device="cpu"):
        model, meta = real_load(self, ref, device=device)
        record["loaded"].append(model)
        model.register_forward_pre_hook(lambda module, _inputs: record["ran"].append(id(module)))
        return model, meta

    monkeypatch.setattr(library_module.ModelLibrary, "load", counting_load)
    return record


def rename_class_in_panel(qtbot, panel, class_id: int, name: str) -> None:
    """F2 on a class in the Classes panel, the new name typed and Return pressed, as a user renames it."""
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QApplication, QLineEdit

    panel.list.setCurrentItem(panel.item_for(class_id))
    panel.list.setFocus()
    qtbot.keyClick(panel.list, Qt.Key.Key_F2)
    editor = QApplication.focusWidget()
    assert isinstance(editor, QLineEdit)
    editor.selectAll()
    qtbot.keyClicks(editor, name)
    qtbot.keyClick(editor, Qt.Key.Key_Return)


def short_fine_tune(qtbot, window, steps: int):
    """Model > Fine-tune, a run of ``steps`` steps of 64 px crops on the CPU started from the dialog; waits
    for its outcome and returns it."""
    window.actions.fine_tune.trigger()
    dialog = window.training.dialog
    dialog.length_unit.setCurrentIndex(dialog.length_unit.findData("steps"))
    dialog.length_spin.setValue(steps)
    dialog.batch_spin.setValue(2)
    dialog.crop_spin.setValue(64)
    dialog.device_combo.setCurrentIndex(dialog.device_combo.findData("cpu"))
    dialog.accept()
    qtbot.waitUntil(lambda: window.training.outcome is not None, timeout=180_000)
    return window.training.outcome
