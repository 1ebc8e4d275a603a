"""The whole loop a technician runs, in one window: open a sample, predict, correct, undo/redo, export,
fine-tune from the menu, and predict again with the new model version."""
from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPointF, QSettings, Qt
from PySide6.QtWidgets import QApplication

from segstudio.core import paths
from tests.gui.conftest import short_fine_tune

CLASSES = [{"id": 0, "name": "background", "color": [0, 0, 0]}, {"id": 1, "name": "nucleus", "color": [255, 200, 0]}]


@pytest.fixture
def tiny_resources(tmp_path, monkeypatch):
    """The real sample images beside a tiny 'bundled' U-Net, so the loop runs in seconds on a CPU."""
    import torch

    from segstudio.models.checkpoint import ModelMeta, save_checkpoint
    from segstudio.models.registry import build_model

    real_samples = paths.samples_dir()
    resources = tmp_path / "resources"
    (resources / "models").mkdir(parents=True)
    (resources / "samples").symlink_to(real_samples, target_is_directory=True)
    torch.manual_seed(0)
    model = build_model("unet", in_channels=1, num_classes=2, depth=2, base_channels=4)
    meta = ModelMeta(name="tiny-nuclei", version=1, arch="unet", config=dict(model.config), classes=CLASSES,
                     in_channels=1)
    save_checkpoint(resources / "models" / "tiny-nuclei.safetensors", model, meta)
    monkeypatch.setenv("SEGSTUDIO_RESOURCES", str(resources))
    for fmt in (QSettings.Format.NativeFormat, QSettings.Format.IniFormat):
        QSettings.setPath(fmt, QSettings.Scope.UserScope, str(tmp_path / "qsettings"))
    return resources


@pytest.fixture
def loop_window(make_window, tiny_resources):
    window = make_window((900, 700))
    yield window
    window.training.shutdown()
    window.model_host.shutdown()


def predict_and_wait(qtbot, window, doc):
    with qtbot.waitSignal(window.model_host.finished, timeout=120_000):
        qtbot.mouseClick(window.prediction.panel.predict_button, Qt.MouseButton.LeftButton)
    QApplication.processEvents()


@pytest.mark.slow
def test_open_predict_correct_export_finetune_predict_again(loop_window, qtbot, tmp_path):
    from segstudio.core.dataset import load_manifest
    from segstudio.core.document import ImageStatus
    from segstudio.models.library import ModelLibrary

    window = loop_window
    # 1. File > Open Sample.
    samples_menu = window.menus["samples"]
    sample_action = next(a for a in samples_menu.actions() if a.text() == "nuclei_8bit.png")
    sample_action.trigger()
    doc = window.current
    assert doc is not None and doc.title == "nuclei_8bit.png"
    QApplication.processEvents()

    # 2. Predict with the bundled (tiny) model: the overlay fills in and the image is marked predicted.
    assert window.prediction.panel.model_id() == "tiny-nuclei/v1"
    predict_and_wait(qtbot, window, doc)
    assert doc.status == ImageStatus.PREDICTED and doc.model_version == "tiny-nuclei/v1"
    assert doc.prediction is not None and doc.prediction.labels.shape == doc.mask.shape
    np.testing.assert_array_equal(doc.mask, doc.prediction.labels)

    # 3. Paint a correction with the brush: a nucleus stroke across the middle of the image.
    window.editing.select_tool("brush")
    window.editing.session.set_brush_radius(6)
    window.editing.select_class_at(1)
    before = doc.mask.copy()
    viewport = window.canvas.viewport()
    points = [(200, 250), (260, 255), (320, 260)]
    to_view = lambda x, y: window.canvas.mapFromScene(QPointF(x + 0.5, y + 0.5))  # noqa: E731
    qtbot.mousePress(viewport, Qt.MouseButton.LeftButton, pos=to_view(*points[0]))
    for x, y in points[1:]:
        qtbot.mouseMove(viewport, to_view(x, y))
    qtbot.mouseRelease(viewport, Qt.MouseButton.LeftButton, pos=to_view(*points[-1]))
    after = doc.mask.copy()
    assert (after[255, 200:321] == 1).all() and doc.hand[255, 260]
    assert doc.status == ImageStatus.EDITED

    # 4. Undo restores the prediction exactly; redo brings the correction back.
    window.actions.undo.trigger()
    np.testing.assert_array_equal(doc.mask, before)
    assert not doc.hand.any()
    window.actions.redo.trigger()
    np.testing.assert_array_equal(doc.mask, after)

    # 5. Export to a dataset folder from the File menu.
    dataset = tmp_path / "dataset"
    window.actions.export_dataset.trigger()
    dialog = window.exporting.dialog
    dialog.folder_edit.setText(str(dataset))
    dialog.all_radio.setChecked(True)
    with qtbot.waitSignal(window.exporting.export_finished, timeout=60_000):
        dialog.accept()
    manifest = load_manifest(dataset)
    assert len(manifest["entries"]) == 1
    entry = manifest["entries"][0]
    assert entry["model_version"] == "tiny-nuclei/v1" and entry["hand_fraction"] > 0
    assert doc.status == ImageStatus.EXPORTED

    # 6. Model > Fine-tune: a short run of the real `segstudio train` child.
    outcome = short_fine_tune(qtbot, window, steps=4)
    assert outcome.status == "done", outcome.message
    assert outcome.version == "tiny-nuclei/v2"
    new_entry = ModelLibrary().find("tiny-nuclei/v2")
    assert new_entry.meta.parent == "tiny-nuclei/v1" and not new_entry.bundled
    if window.training.summary_dialog is not None:
        window.training.summary_dialog.close()

    # 7. Predict again with the new version: the hand-painted correction survives the new prediction.
    assert window.prediction.select_model("tiny-nuclei/v2")
    predict_and_wait(qtbot, window, doc)
    assert doc.model_version == "tiny-nuclei/v2"
    assert (doc.mask[255, 200:321] == 1).all()
    np.testing.assert_array_equal(doc.mask[~doc.hand], doc.prediction.labels[~doc.hand])
