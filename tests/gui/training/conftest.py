"""Every fine-tuning test gets private QSettings and a model library without the bundled models."""
from __future__ import annotations

import pytest
from PySide6.QtCore import QSettings

from tests.gui.training.fixtures import save_tiny_unet, write_dataset


@pytest.fixture(autouse=True)
def private_qsettings(tmp_path):
    for fmt in (QSettings.Format.NativeFormat, QSettings.Format.IniFormat):
        QSettings.setPath(fmt, QSettings.Scope.UserScope, str(tmp_path / "qsettings"))
    yield


@pytest.fixture(autouse=True)
def no_bundled_models(tmp_path, monkeypatch):
    """Only the models a test saves are in the library."""
    resources = tmp_path / "resources"
    (resources / "models").mkdir(parents=True)
    monkeypatch.setenv("SEGSTUDIO_RESOURCES", str(resources))


@pytest.fixture
def tiny_setup(window, tmp_path):
    """A tiny U-Net in the library (selected in the Model panel) and an exported dataset."""
    from segstudio.gui.settings import LAST_DATASET_KEY

    base = save_tiny_unet()
    window.prediction.reload_models()
    data = write_dataset(tmp_path / "dataset")
    QSettings().setValue(LAST_DATASET_KEY, str(data))
    return base, data
