"""A dataset with a class the model lacks: Fine-tune offers a larger version instead of failing, and refuses
up front, naming the image, when a mask uses a class no table names."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PySide6.QtWidgets import QMessageBox

from tests.gui.training.fixtures import CLASSES, save_tiny_unet
from tests.gui.training.test_controller import fake_child, replace_controller, visible_errors

THREE = [*CLASSES, {"id": 2, "name": "mitosis", "color": [0, 200, 0]}]


def write_three_class_dataset(folder, n=4, size=40):
    from segstudio.core.dataset import ExportItem, export_many
    from segstudio.core.labels import ClassTable

    items = []
    for i in range(n):
        mask = np.zeros((size, size), np.uint8)
        mask[5:15, 5:15] = 1
        mask[20:30, 20:30] = 2
        pixels = (mask.astype(np.uint16) * 500 + 100 + i).astype(np.uint16)
        items.append(ExportItem(pixels=pixels, mask=mask, source=f"/slides/cells{i}.tif", hand=mask > 0))
    export_many(folder, items, ClassTable.from_list(THREE))
    return folder


@pytest.fixture
def recorded(window, tmp_path):
    command = fake_child(tmp_path, """
        emit(event="done", version="blobs/v3", promoted=False, steps=1)
    """)
    controller = replace_controller(window, command)
    yield controller, tmp_path / "argv.json"
    controller.shutdown()


def test_fine_tune_offers_to_extend_the_model_and_trains_the_larger_version(window, qtbot, tmp_path, monkeypatch,
                                                                            recorded):
    from segstudio.models.library import ModelLibrary

    controller, argv_file = recorded
    base = save_tiny_unet()
    window.prediction.reload_models()
    data = write_three_class_dataset(tmp_path / "cells")
    asked = []

    def answer(parent, title, text, *args):
        asked.append(text)
        return QMessageBox.StandardButton.Yes

    monkeypatch.setattr("segstudio.gui.training.controller.QMessageBox.question", answer)
    window.actions.fine_tune.trigger()  # Model > Fine-tune...
    dialog = controller.dialog
    dialog.add_dataset(data)
    with qtbot.waitSignal(controller.run_finished, timeout=30_000):
        dialog.start_button.click()
    assert "mitosis (id 2)" in asked[0] and base in asked[0]
    grown = ModelLibrary().find("blobs/v2")
    assert grown.meta.parent == base and grown.meta.num_classes == 3
    assert [c["name"] for c in grown.meta.classes] == ["background", "nucleus", "mitosis"]
    argv = json.loads(argv_file.read_text())
    assert "blobs/v2" in argv and base not in argv
    assert ModelLibrary().find(base).meta.num_classes == 2  # the version the user had is untouched


def test_a_mask_with_an_unnamed_class_is_refused_before_any_child_runs(window, qtbot, tmp_path, recorded):
    controller, argv_file = recorded
    base = save_tiny_unet()
    window.prediction.reload_models(select=base)
    data = write_three_class_dataset(tmp_path / "cells")
    manifest = json.loads((data / "dataset.json").read_text())
    manifest["classes"] = [c for c in manifest["classes"] if c["id"] != 2]  # a table that lost the class
    (data / "dataset.json").write_text(json.dumps(manifest))
    window.actions.fine_tune.trigger()  # Model > Fine-tune...
    controller.dialog.add_dataset(data)
    controller.dialog.start_button.click()
    assert controller.process is None and not argv_file.exists()
    (error,) = visible_errors(window)
    assert "/slides/cells" in error.text() and "class id 2" in error.text()
