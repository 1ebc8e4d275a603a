"""A class the user removed stays removed: through re-export, fine-tuning and predicting with the new model."""
from __future__ import annotations

import numpy as np
import pytest
import tifffile
from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import QApplication

from tests.gui.conftest import rename_class_in_panel, save_tiny


@pytest.fixture
def tiny_window(make_window, tmp_path, monkeypatch):
    resources = tmp_path / "resources"
    (resources / "models").mkdir(parents=True)
    save_tiny(resources, "tiny")  # 2 outputs: background, nucleus
    monkeypatch.setenv("SEGSTUDIO_RESOURCES", str(resources))
    for fmt in (QSettings.Format.NativeFormat, QSettings.Format.IniFormat):
        QSettings.setPath(fmt, QSettings.Scope.UserScope, str(tmp_path / "qsettings"))
    window = make_window((900, 700))
    yield window
    window.model_host.shutdown()


def export_everything(window, qtbot, folder):
    window.actions.export_dataset.trigger()
    dialog = window.exporting.dialog
    dialog.folder_edit.setText(str(folder))
    dialog.all_radio.setChecked(True)
    with qtbot.waitSignal(window.exporting.export_finished, timeout=60_000):
        dialog.accept()


def predict_and_wait(qtbot, window):
    with qtbot.waitSignal(window.model_host.finished, timeout=120_000):
        qtbot.mouseClick(window.prediction.panel.predict_button, Qt.MouseButton.LeftButton)
    QApplication.processEvents()


@pytest.mark.slow
def test_a_removed_class_does_not_come_back_after_export_fine_tune_and_predict(tiny_window, qtbot, tmp_path,
                                                                                monkeypatch):
    from segstudio.core.dataset import load_manifest
    from segstudio.engine.training.config import TrainConfig
    from segstudio.engine.training.loop import fine_tune
    from segstudio.models.library import ModelLibrary

    window, editing = tiny_window, tiny_window.editing
    rng = np.random.default_rng(0)
    pixels = rng.integers(20, 60, (48, 64)).astype(np.uint8)
    pixels[10:30, 20:40] = 200
    tifffile.imwrite(tmp_path / "slide.tif", pixels)
    (doc,) = window.open_paths([tmp_path / "slide.tif"])
    QApplication.processEvents()

    # A third class, painted on the image and exported: the dataset lists three classes.
    qtbot.mouseClick(editing.classes_panel.add_button, Qt.MouseButton.LeftButton)
    extra = editing.classes.table.classes[-1]
    mask = np.zeros(doc.mask.shape, np.uint8)
    mask[10:30, 20:40] = 1
    mask[40:44, 2:6] = extra.id
    doc.replace_mask(mask)
    dataset = tmp_path / "dataset"
    export_everything(window, qtbot, dataset)
    assert len(load_manifest(dataset)["classes"]) == 3

    # The user removes it in the Classes panel and exports again.
    monkeypatch.setattr(editing, "confirm_remove", lambda *args: True)
    editing.classes_panel.list.setCurrentItem(editing.classes_panel.item_for(extra.id))
    qtbot.mouseClick(editing.classes_panel.remove_button, Qt.MouseButton.LeftButton)
    assert extra.id not in editing.classes.table.ids()
    export_everything(window, qtbot, dataset)
    assert [c["name"] for c in load_manifest(dataset)["classes"]] == ["background", "nucleus"]

    # Fine-tune on that dataset: the new version lists exactly its two outputs.
    result = fine_tune(TrainConfig(base="tiny/v1", data=[dataset], steps=2, batch_size=2, crop=32, device="cpu",
                                   force_promote=True))
    assert result.status == "done"
    meta = ModelLibrary().find("tiny/v2").meta
    assert [c["name"] for c in meta.classes] == ["background", "nucleus"] and meta.num_classes == 2

    # Predicting with it brings no class back and warns about nothing.
    window.prediction.reload_models(select="tiny/v2")
    assert window.prediction.model_id() == "tiny/v2"
    messages = []
    window.statusBar().messageChanged.connect(messages.append)
    predict_and_wait(qtbot, window)
    assert doc.model_version == "tiny/v2"
    assert editing.classes.table.ids() == [0, 1]
    assert not doc.prediction.notes
    assert not any("outputs" in m or "did not list" in m for m in messages)


def test_a_model_that_predicts_a_removed_class_brings_it_back_and_says_so(make_window, tmp_path, monkeypatch,
                                                                         qtbot):
    import torch

    from segstudio.models.checkpoint import ModelMeta, save_checkpoint
    from segstudio.models.registry import build_model

    resources = tmp_path / "resources"
    (resources / "models").mkdir(parents=True)
    torch.manual_seed(0)
    model = build_model("unet", in_channels=1, num_classes=3, depth=2, base_channels=4)
    classes = [{"id": 0, "name": "background", "color": [0, 0, 0]}, {"id": 1, "name": "nucleus", "color": [255, 0, 0]},
               {"id": 2, "name": "membrane", "color": [0, 255, 0]}]
    save_checkpoint(resources / "models" / "three.safetensors", model,
                    ModelMeta(name="three", version=1, arch="unet", config=dict(model.config), classes=classes))
    monkeypatch.setenv("SEGSTUDIO_RESOURCES", str(resources))
    window = make_window((900, 700))
    try:
        editing = window.editing
        tifffile.imwrite(tmp_path / "slide.tif", np.random.default_rng(0).integers(0, 255, (40, 40), np.uint8))
        window.open_paths([tmp_path / "slide.tif"])
        predict_and_wait(qtbot, window)
        assert editing.classes.table.ids() == [0, 1, 2]
        monkeypatch.setattr(editing, "confirm_remove", lambda *args: True)
        editing.classes_panel.list.setCurrentItem(editing.classes_panel.item_for(2))
        qtbot.mouseClick(editing.classes_panel.remove_button, Qt.MouseButton.LeftButton)
        assert editing.classes.table.ids() == [0, 1]
        messages = []
        editing.classes.message.connect(messages.append)
        predict_and_wait(qtbot, window)
        assert editing.classes.table.ids() == [0, 1, 2]  # its pixels need a name and a colour to be seen
        assert len(messages) == 1 and "'membrane'" in messages[0] and "did not list" in messages[0]
    finally:
        window.model_host.shutdown()


@pytest.mark.slow
def test_a_renamed_class_keeps_its_new_name_in_the_dataset_the_model_and_the_session(tiny_window, qtbot, tmp_path):

    from segstudio.core.dataset import load_manifest
    from segstudio.engine.training.config import TrainConfig
    from segstudio.engine.training.loop import fine_tune
    from segstudio.models.library import ModelLibrary

    window, editing = tiny_window, tiny_window.editing
    pixels = np.random.default_rng(0).integers(20, 60, (48, 64)).astype(np.uint8)
    pixels[10:30, 20:40] = 200
    tifffile.imwrite(tmp_path / "slide.tif", pixels)
    (doc,) = window.open_paths([tmp_path / "slide.tif"])
    predict_and_wait(qtbot, window)  # the model's table (background, nucleus) becomes the session's
    mask = np.zeros(doc.mask.shape, np.uint8)
    mask[10:30, 20:40] = 1
    doc.replace_mask(mask)

    rename_class_in_panel(qtbot, editing.classes_panel, 1, "nuclear envelope")  # F2 on "nucleus", typed
    qtbot.waitUntil(lambda: editing.classes.table.get(1).name == "nuclear envelope")

    dataset = tmp_path / "dataset"
    export_everything(window, qtbot, dataset)
    assert [c["name"] for c in load_manifest(dataset)["classes"]] == ["background", "nuclear envelope"]
    result = fine_tune(TrainConfig(base="tiny/v1", data=[dataset], steps=2, batch_size=2, crop=32, device="cpu",
                                   force_promote=True))
    assert result.status == "done"
    assert [c["name"] for c in ModelLibrary().find("tiny/v2").meta.classes] == ["background", "nuclear envelope"]
    assert [c["name"] for c in ModelLibrary().find("tiny/v1").meta.classes] == ["background", "nucleus"]

    window.prediction.reload_models(select="tiny/v2")
    messages = []
    editing.classes.message.connect(messages.append)
    predict_and_wait(qtbot, window)
    assert editing.classes.table.names() == ["background", "nuclear envelope"] and not messages

    window.actions.new_model.trigger()  # Model > New Model lists the session's classes as they are named now
    qtbot.waitUntil(lambda: window.models.dialog is not None and window.models.dialog.isVisible())
    assert window.models.dialog.classes_label.text().startswith("background, nuclear envelope  (")
    window.models.dialog.reject()
