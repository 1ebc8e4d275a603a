"""Test-wide settings: Qt offscreen, private settings and user-data folders, a fixed seed."""
import os
import tempfile

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# The test models are tiny: one thread per process is fastest, and with several processes (training
# children, torchrun ranks) more threads than cores makes torch's thread pool spin and crawl.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # after OMP_NUM_THREADS: numpy's BLAS reads it when loaded
import pytest

# Nothing a test does may touch the real user's files. The XDG folders cover everything a library finds on
# its own (Qt's settings, caches) and are inherited by child processes (training runs, torchrun ranks).
_PRIVATE_HOME = tempfile.mkdtemp(prefix="segstudio-tests-")
for _var in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME"):
    os.environ[_var] = os.path.join(_PRIVATE_HOME, _var.lower())


@pytest.fixture(autouse=True)
def _isolated_user_data(tmp_path, monkeypatch):
    """Every test writes autosaves, models and settings into its own folders."""
    data = tmp_path / "user-data"
    monkeypatch.setenv("SEGSTUDIO_DATA_DIR", str(data))
    _private_qsettings(tmp_path / "settings")
    yield data


def _private_qsettings(folder):
    """Qt reads the settings location once per process, so each test points QSettings at its own folder."""
    try:
        from PySide6.QtCore import QSettings
    except ImportError:  # Qt itself missing: tests that need it fail on their own
        return
    for fmt in (QSettings.Format.NativeFormat, QSettings.Format.IniFormat):
        QSettings.setPath(fmt, QSettings.Scope.UserScope, str(folder))


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
def make_window(qtbot, monkeypatch):
    """Factory for a shown main window, ready once the engine has loaded in the background.

    Its New Model dialog does not time networks (seconds of CPU each, on a machine the tests share): the
    measurement answers 0.5 s at once. tests/gui/models/test_new_model.py checks the measuring itself.
    """

    def make(size=(800, 600)):
        from segstudio.gui.app import create_application
        from segstudio.gui.main_window import MainWindow

        monkeypatch.setattr("segstudio.gui.models.controller._tile_seconds", lambda arch: 0.5)

        create_application()
        win = MainWindow()
        qtbot.addWidget(win)
        win.resize(*size)
        win.show()
        qtbot.waitExposed(win)
        qtbot.waitUntil(lambda: win.prediction.ready, timeout=120_000)
        return win

    return make
