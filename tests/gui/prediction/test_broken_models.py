"""Broken model files in the window: each unreadable one is named in the Model panel while the others stay
listed and usable, and a model whose answer is not numbers is refused by name instead of filling the mask."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QMessageBox

from tests.gui.prediction.test_predict_panel import CLASSES
from tests.models.test_hostile_models import meta_dict, write_raw


@pytest.fixture
def bundled(tmp_path, monkeypatch):
    """A working tiny model, bundled; returns the bundled models folder."""
    from segstudio.models.checkpoint import ModelMeta, save_checkpoint
    from segstudio.models.registry import build_model

    folder = tmp_path / "resources" / "models"
    folder.mkdir(parents=True)
    torch.manual_seed(0)
    model = build_model("unet", in_channels=1, num_classes=2, depth=2, base_channels=4)
    save_checkpoint(folder / "tiny.safetensors", model,
                    ModelMeta(name="tiny", version=1, arch="unet", config=dict(model.config), classes=CLASSES))
    monkeypatch.setenv("SEGSTUDIO_RESOURCES", str(tmp_path / "resources"))
    return folder


def test_unreadable_model_files_are_named_and_the_bundled_model_still_predicts(bundled, make_window, qtbot,
                                                                                dim16_tiff):
    from segstudio.core.paths import user_models_dir

    family = user_models_dir() / "shared"
    family.mkdir(parents=True)
    write_raw(family / "v1.safetensors", json.dumps(meta_dict(classes="background,nucleus")))
    write_raw(family / "v2.safetensors", '{"name": "shared", "version": Infinity, "arch": "unet"}')
    (family / "v3.safetensors").write_bytes(b"\x1b[2J not a model")

    window = make_window()
    panel = window.prediction.panel
    assert [panel.model_combo.itemData(i) for i in range(panel.model_combo.count())] == ["tiny/v1"]
    note = panel.problems_note
    assert note.isVisible() and "3 unreadable model files" in note.text()
    assert "classes must be a list" in note.toolTip() and "Infinity" in note.toolTip()
    assert "v3.safetensors" in note.toolTip()

    note.linkActivated.emit("details")  # the "Details…" link
    (box,) = [b for b in window.findChildren(QMessageBox) if b.objectName() == "modelProblemsDialog"]
    assert box.isVisible() and all(f"v{i}.safetensors" in box.detailedText() for i in (1, 2, 3))
    assert "\x1b" not in box.detailedText()
    box.close()

    (doc,) = window.open_paths([dim16_tiff])
    with qtbot.waitSignal(window.model_host.finished, timeout=60_000):
        qtbot.mouseClick(panel.predict_button, Qt.MouseButton.LeftButton)
    assert doc.model_version == "tiny/v1"


def test_a_model_computing_nan_is_refused_by_name_and_the_mask_is_untouched(bundled, make_window, qtbot,
                                                                             dim16_tiff):
    from segstudio.models.checkpoint import ModelMeta, save_checkpoint
    from segstudio.models.registry import build_model

    model = build_model("unet", in_channels=1, num_classes=2, depth=2, base_channels=4)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.ndim == 4:
                parameter.fill_(3e38)  # finite, so the file loads, but every sum overflows
    (bundled / "tiny.safetensors").unlink()
    broken = bundled / "overflowing.safetensors"
    save_checkpoint(broken, model, ModelMeta(name="overflowing", version=1, arch="unet",
                                             config=dict(model.config), classes=CLASSES))
    window = make_window()
    (doc,) = window.open_paths([dim16_tiff])
    QApplication.processEvents()
    before = doc.mask.copy()
    with qtbot.waitSignal(window.model_host.failed, timeout=60_000):
        qtbot.mouseClick(window.prediction.panel.predict_button, Qt.MouseButton.LeftButton)
    assert str(broken) in window.last_error and "not a number" in window.last_error
    assert "UnusableModelOutput" not in window.last_error  # plain words, not the error's type
    np.testing.assert_array_equal(doc.mask, before)
    assert not window.prediction.progress.isVisible() and window.actions.predict.isEnabled()
