"""Small generated slides shared by the reading tests and the slide tests above them."""
import pytest

from segstudio.synth.slides import write_pyramid_ome, write_svs_like


@pytest.fixture(scope="session")
def small_pyramid(tmp_path_factory):
    """A 2048 x 1536 OME-TIFF with three levels (downsample 1, 4, 16), 256-pixel tiles, 0.25 µm pixels."""
    return write_pyramid_ome(tmp_path_factory.mktemp("slides") / "pyramid.ome.tif", 1536, 2048, levels=3)


@pytest.fixture(scope="session")
def svs_like(tmp_path_factory):
    """An SVS-like file: three levels, thumbnail, label and macro; 0.5 µm pixels at 20x."""
    return write_svs_like(tmp_path_factory.mktemp("slides") / "scan.svs", 1536, 2048, levels=3)
