"""Each of the seven networks through the window: Model > New Model (at a tiny size), Predict, the inspector,
Export to Dataset, Model > Fine-tune (the real `segstudio train` child, two steps) and Predict again with the
new version read back from the library."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import tifffile
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from segstudio.models import catalogue
from segstudio.synth import generate_nuclei_image
from tests.gui.conftest import short_fine_tune
from tests.models.conftest import TINY_CONFIGS

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("single_torch_thread")]


@pytest.fixture
def tiny_networks(monkeypatch):
    """The catalogue's default sizes made tiny, so each network makes, trains and predicts in seconds."""
    for arch, config in TINY_CONFIGS.items():
        monkeypatch.setitem(catalogue._BY_ARCH, arch, dataclasses.replace(catalogue.network(arch), config=config))


def _predict(qtbot, window):
    with qtbot.waitSignal(window.model_host.finished, timeout=120_000,
                          check_params_cb=lambda job, _result: job.kind == "predict"):  # not the inspector's
        qtbot.mouseClick(window.prediction.panel.predict_button, Qt.MouseButton.LeftButton)
    QApplication.processEvents()


@pytest.mark.parametrize("arch", [n.arch for n in catalogue.NETWORKS])
def test_new_predict_inspect_fine_tune_predict_in_the_window(arch, tiny_networks, make_window, qtbot, tmp_path):
    from segstudio.models.library import ModelLibrary

    window = make_window((900, 700))
    try:
        image, truth, _ = generate_nuclei_image(5, height=96, width=96, bit_depth=8)
        tifffile.imwrite(tmp_path / "cells.tif", image)
        (doc,) = window.open_paths([tmp_path / "cells.tif"])

        window.actions.new_model.trigger()  # Model > New Model...
        qtbot.waitUntil(lambda: window.models.dialog is not None and window.models.dialog.isVisible())
        dialog = window.models.dialog
        dialog.arch_combo.setCurrentIndex(dialog.arch_combo.findData(arch))
        dialog.name_edit.clear()
        qtbot.keyClicks(dialog.name_edit, f"my-{arch}")
        with qtbot.waitSignal(window.models.created, timeout=60_000):
            qtbot.mouseClick(dialog.create_button, Qt.MouseButton.LeftButton)
        assert window.prediction.model_id() == f"my-{arch}/v1"

        _predict(qtbot, window)
        assert doc.model_version == f"my-{arch}/v1" and doc.prediction.labels.shape == (96, 96)

        window.inspector.show_dock()  # Model > Look Inside the Network
        qtbot.waitUntil(lambda: window.inspector.description is not None, timeout=60_000)
        assert window.inspector.description.arch == arch
        qtbot.mouseClick(window.inspector.panel.compute_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: window.inspector.inspection is not None, timeout=60_000)

        doc.replace_mask(truth.astype(np.uint8))  # the corrected mask, exported to a dataset
        window.actions.export_dataset.trigger()
        export = window.exporting.dialog
        export.folder_edit.setText(str(tmp_path / "dataset"))
        export.all_radio.setChecked(True)
        with qtbot.waitSignal(window.exporting.export_finished, timeout=60_000):
            export.accept()

        short_fine_tune(qtbot, window, steps=2)  # Model > Fine-tune...
        assert window.training.outcome.status == "done", window.training.outcome.message
        assert window.training.outcome.version == f"my-{arch}/v2"
        if window.training.summary_dialog is not None:
            window.training.summary_dialog.close()

        assert ModelLibrary().find(f"my-{arch}/v2").meta.parent == f"my-{arch}/v1"
        assert window.prediction.select_model(f"my-{arch}/v2")
        _predict(qtbot, window)
        assert doc.model_version == f"my-{arch}/v2"
    finally:
        window.training.shutdown()
        window.model_host.shutdown()
