"""Whole-slide images open lazily as slides: levels, tiles, pixel size and associated images from the file."""
import shutil

import numpy as np
import pytest
import tifffile

from segstudio.cli import main
from segstudio.core.imageio import ImageReadError, Slide, is_whole_slide, open_image, probe_image, read_image


def test_a_pyramid_opens_as_a_slide_with_its_levels_tiles_and_pixel_size(small_pyramid):
    slide = open_image(small_pyramid)
    assert isinstance(slide, Slide)
    assert [(lv.width, lv.height) for lv in slide.levels] == [(2048, 1536), (512, 384), (128, 96)]
    assert [round(lv.downsample) for lv in slide.levels] == [1, 4, 16]
    assert all((lv.tile_width, lv.tile_height) == (256, 256) for lv in slide.levels)
    assert slide.mpp == pytest.approx(0.25)
    assert slide.info.channels == 3


def test_a_region_of_a_coarse_level_matches_the_full_resolution_it_stands_for(small_pyramid):
    with Slide(small_pyramid) as slide:
        full = read_image(small_pyramid).pixels
        assert np.array_equal(slide.read_region(0, 300, 200, 64, 32), full[200:232, 300:364])
        coarse = slide.read_region(1, 0, 0, 512, 384).astype(float)
        assert abs(coarse.mean() - full.astype(float).mean()) < 6  # the same tissue, four times smaller


def test_regions_past_the_edge_come_back_padded_to_their_size(small_pyramid):
    with Slide(small_pyramid) as slide:
        edge = slide.read_region(2, 100, 80, 64, 64)
        assert edge.shape == (64, 64, 3)
        assert not edge[20:, :].any() and not edge[:, 30:].any()


@pytest.mark.parametrize(("downsample", "level"), [(0.5, 0), (1, 0), (3.9, 0), (4, 1), (10, 1), (16.1, 2), (500, 2)])
def test_the_level_for_a_zoom_is_the_coarsest_that_does_not_upscale(small_pyramid, downsample, level):
    with Slide(small_pyramid) as slide:
        assert slide.best_level(downsample) == level


def test_an_svs_file_lists_label_macro_and_thumbnail_as_associated_images_not_pages(svs_like, tmp_path):
    with Slide(svs_like) as slide:
        assert set(slide.info.associated) == {"thumbnail", "label", "macro"}
        assert slide.associated_image("label").shape == (120, 300, 3)
        assert slide.info.magnification == 20 and slide.mpp == pytest.approx(0.5)
        assert slide.info.vendor == "aperio"
    # The same bytes named .tif: the ordinary reader offers one page, not four.
    as_tiff = shutil.copy(svs_like, tmp_path / "scan.tif")
    assert len(tifffile.TiffFile(as_tiff).series) == 4
    assert probe_image(as_tiff).pages == 1
    assert is_whole_slide(as_tiff)


def test_ordinary_images_still_read_whole(tmp_path):
    path = tmp_path / "plain.tif"
    tifffile.imwrite(path, np.zeros((64, 80), np.uint8))
    assert not is_whole_slide(path)
    assert open_image(path).pixels.shape == (64, 80, 1)


def test_a_single_level_tiff_over_the_pixel_cap_opens_as_a_slide_instead_of_being_refused(tmp_path):
    path = tmp_path / "big.tif"
    tifffile.imwrite(path, np.zeros((512, 512), np.uint8), tile=(256, 256))
    with pytest.raises(ImageReadError, match="over the limit"):
        read_image(path, max_pixels=100_000)
    slide = open_image(path, max_pixels=100_000)
    assert isinstance(slide, Slide) and slide.shape == (512, 512) and len(slide.levels) == 1


def test_a_damaged_slide_names_the_file_and_the_reason(small_pyramid, tmp_path):
    broken = tmp_path / "broken.svs"
    broken.write_bytes(small_pyramid.read_bytes()[:300])
    with pytest.raises(ImageReadError, match="broken.svs"):
        Slide(broken)


def test_info_prints_size_levels_tiles_pixel_size_associated_images_and_reader(svs_like, capsys):
    assert main(["info", str(svs_like)]) == 0
    out = capsys.readouterr().out
    assert "2,048 x 1,536 pixels" in out
    assert "levels:      3" in out
    assert "tile size:   256 x 256" in out
    assert "pixel size:  0.5 x 0.5 µm" in out
    assert "magnification: 20x" in out
    assert "associated images: thumbnail (256 x 192), label (300 x 120), macro (600 x 200)" in out
    assert "reader:      tiffslide" in out


def test_info_on_a_missing_file_fails_with_the_reason(tmp_path, capsys):
    assert main(["info", str(tmp_path / "gone.svs")]) == 1
    assert "gone.svs" in capsys.readouterr().err
