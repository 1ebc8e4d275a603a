"""Test-wide settings: Qt offscreen, a private user-data folder, a fixed seed."""
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import pytest


@pytest.fixture(autouse=True)
def _isolated_user_data(tmp_path, monkeypatch):
    """Every test writes autosaves, models and settings into its own folder."""
    data = tmp_path / "user-data"
    monkeypatch.setenv("SEGSTUDIO_DATA_DIR", str(data))
    yield data


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
