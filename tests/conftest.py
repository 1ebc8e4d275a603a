"""Test-wide settings: Qt offscreen, a private user-data folder, a fixed seed."""
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# The test models are tiny: one thread per process is fastest, and with several processes (training
# children, torchrun ranks) more threads than cores makes torch's thread pool spin and crawl.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pytest


@pytest.fixture(autouse=True)
def _isolated_user_data(tmp_path, monkeypatch):
    """Every test writes autosaves, models and settings into its own folder."""
    data = tmp_path / "user-data"
    monkeypatch.setenv("SEGSTUDIO_DATA_DIR", str(data))
    yield data


@pytest.fixture
def single_torch_thread():
    """torch on one thread for the test: tiny convolutions run slower with more on a shared 2-core machine.

    Not autouse: importing torch here would hide whether a test of start-up imports it.
    """
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture
def make_window(qtbot):
    """Factory for a shown main window, ready once the engine has loaded in the background."""

    def make(size=(800, 600)):
        from segstudio.gui.app import create_application
        from segstudio.gui.main_window import MainWindow

        create_application()
        win = MainWindow()
        qtbot.addWidget(win)
        win.resize(*size)
        win.show()
        qtbot.waitExposed(win)
        qtbot.waitUntil(lambda: win.prediction.ready, timeout=120_000)
        return win

    return make
