import numpy as np
import pytest
import tifffile


@pytest.fixture
def window(make_window):
    return make_window()


@pytest.fixture
def dim16_tiff(tmp_path):
    """A dim 16-bit image: a bright square (400) on a dark background (100), raw values nearly black."""
    img = np.full((48, 64), 100, np.uint16)
    img[10:30, 20:50] = 400
    path = tmp_path / "dim16.tif"
    tifffile.imwrite(path, img)
    return path
