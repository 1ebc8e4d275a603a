"""The pixel size a TIFF records reaches the image's metadata; a page-layout resolution does not."""
from __future__ import annotations

import numpy as np
import pytest
import tifffile

from segstudio.core.imageio import read_image


def test_imagej_calibration_in_microns(tmp_path):
    path = tmp_path / "fiji.tif"
    tifffile.imwrite(path, np.zeros((8, 8), np.uint16), imagej=True, resolution=(1 / 0.325, 1 / 0.325),
                     metadata={"unit": "micron"})
    assert read_image(path).meta.pixel_size_um == pytest.approx(0.325, rel=1e-4)


def test_ome_physical_size_with_its_unit(tmp_path):
    path = tmp_path / "scope.ome.tif"
    tifffile.imwrite(path, np.zeros((8, 8), np.uint8), ome=True,
                     metadata={"PhysicalSizeX": 650, "PhysicalSizeXUnit": "nm", "PhysicalSizeY": 650})
    assert read_image(path).meta.pixel_size_um == pytest.approx(0.65)


def test_centimetre_resolution_tags(tmp_path):
    path = tmp_path / "tags.tif"
    tifffile.imwrite(path, np.zeros((8, 8), np.uint8), resolution=(40_000, 40_000), resolutionunit="CENTIMETER")
    assert read_image(path).meta.pixel_size_um == pytest.approx(0.25)


def test_72_dpi_from_a_drawing_program_is_not_a_pixel_size(tmp_path):
    path = tmp_path / "drawn.tif"
    tifffile.imwrite(path, np.zeros((8, 8), np.uint8), resolution=(72, 72), resolutionunit="INCH")
    assert read_image(path).meta.pixel_size_um is None
