import numpy as np
import pytest
import tifffile


@pytest.fixture
def window(qtbot):
    from segstudio.gui.app import create_application
    from segstudio.gui.main_window import MainWindow

    create_application()
    win = MainWindow()
    qtbot.addWidget(win)
    win.resize(800, 600)
    win.show()
    qtbot.waitExposed(win)
    # The engine (torch) is imported in the background; tests start once the model picker is filled.
    qtbot.waitUntil(lambda: win.prediction.ready, timeout=120_000)
    return win


@pytest.fixture
def dim16_tiff(tmp_path):
    """A dim 16-bit image: a bright square (400) on a dark background (100), raw values nearly black."""
    img = np.full((48, 64), 100, np.uint16)
    img[10:30, 20:50] = 400
    path = tmp_path / "dim16.tif"
    tifffile.imwrite(path, img)
    return path
