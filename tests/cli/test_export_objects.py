"""`segstudio export --format ...`: each image's objects in the files QuPath, Fiji and napari read."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import tifffile

from segstudio.cli import main
from segstudio.core.objects.formats import read_objects


@pytest.fixture
def labelled(tmp_path):
    """One image with two touching nuclei and one apart, and its class mask as `predict` writes it."""
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    mask = np.zeros((80, 100), np.uint8)
    cv2.circle(mask, (25, 40), 12, 1, -1)
    cv2.circle(mask, (46, 40), 12, 1, -1)
    cv2.circle(mask, (85, 12), 8, 1, -1)
    tifffile.imwrite(images / "slide.tif", mask.astype(np.uint16) * 900)
    cv2.imwrite(str(masks / "slide_mask.png"), mask)
    return images / "slide.tif", masks, mask


@pytest.mark.parametrize("fmt,name", [("geojson", "slide.geojson"), ("imagej", "slide_rois.zip"),
                                      ("coco", "slide_coco.json"), ("instances", "slide_objects.tif"),
                                      ("omezarr", "slide.ome.zarr")])
def test_each_format_holds_the_split_objects(labelled, tmp_path, fmt, name, capsys):
    image, masks, mask = labelled
    out = tmp_path / "out"
    assert main(["export", str(image), "--masks", str(masks), "--format", fmt, "--to", str(out)]) == 0
    layer = read_objects(out / name, shape=mask.shape)
    assert layer.ids.max() == 3  # the touching pair came apart
    assert np.array_equal(layer.ids > 0, mask > 0)
    assert set(layer.names.values()) == {"nucleus"}
    assert "1 exported, 0 failed" in capsys.readouterr().out


def test_no_split_keeps_each_patch_whole(labelled, tmp_path):
    image, masks, _ = labelled
    out = tmp_path / "out"
    assert main(["export", str(image), "--masks", str(masks), "--format", "geojson", "--no-split",
                 "--to", str(out)]) == 0
    assert len(json.loads((out / "slide.geojson").read_text())["features"]) == 2


def test_objects_written_by_predict_are_used_as_they_are(labelled, tmp_path):
    image, masks, mask = labelled
    ids = np.zeros(mask.shape, np.uint16)
    ids[mask > 0] = 7  # a person decided all of it is one object
    tifffile.imwrite(masks / "slide_objects.tif", ids)
    out = tmp_path / "out"
    assert main(["export", str(image), "--masks", str(masks), "--format", "coco", "--to", str(out)]) == 0
    assert len(json.loads((out / "slide_coco.json").read_text())["annotations"]) == 1


def test_an_image_without_a_mask_is_named_and_the_others_still_export(labelled, tmp_path, capsys):
    image, masks, _ = labelled
    lonely = image.with_name("lonely.tif")
    tifffile.imwrite(lonely, np.zeros((10, 10), np.uint8))
    out = tmp_path / "out"
    assert main(["export", str(image), str(lonely), "--masks", str(masks), "--format", "imagej",
                 "--to", str(out)]) == 1
    assert "lonely.tif: no mask" in capsys.readouterr().err
    assert (out / "slide_rois.zip").is_file()
