"""Every object format gives back the mask it was given: holes, pieces, objects on the image border."""
from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
import tifffile

from segstudio.core.labels import ClassTable
from segstudio.core.objects.formats import (
    FORMATS,
    ObjectFileError,
    layer_from_mask,
    layer_to_mask,
    output_name,
    read_objects,
    write_objects,
)
from segstudio.core.objects.instances import connected_objects, relabel


@pytest.fixture
def classes() -> ClassTable:
    table = ClassTable.default()
    table.add("mitosis")
    return table


def awkward_mask() -> np.ndarray:
    """Objects that trip outline code up: a hole, an island in the hole, both image corners, a one-pixel
    object, a diagonal staircase and a thin line."""
    mask = np.zeros((48, 64), np.uint8)
    mask[0:14, 0:14] = 1
    mask[4:10, 4:10] = 0  # a hole in an object that touches two image edges
    mask[6:8, 6:8] = 2  # another object inside that hole
    mask[40:48, 56:64] = 2  # the opposite corner
    mask[20, 20] = 1  # a single pixel
    for i in range(8):  # pixels touching only at their corners
        mask[25 + i, 30 + i] = 1
    mask[45, 10:40] = 1  # one pixel thick, on the bottom rows
    return mask


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_mask_to_file_to_mask_is_exact(fmt, tmp_path, classes):
    mask = awkward_mask()
    ids = connected_objects(mask)
    path = tmp_path / output_name("slide", fmt)
    write_objects(fmt, path, layer_from_mask(ids, mask, classes), classes,
                  pixels=np.full(mask.shape, 7, np.uint8), pixel_size_um=0.25, image_name="slide.tif")
    back = read_objects(path, shape=mask.shape)
    assert np.array_equal(relabel(back.ids), relabel(ids))
    back_mask, back_classes = layer_to_mask(back, classes)
    assert np.array_equal(back_mask, mask)
    assert back_classes == classes  # no class invented on the way


def test_geojson_keeps_the_hole_as_an_inner_ring_and_qupath_classes(tmp_path, classes):
    mask = awkward_mask()
    ids = connected_objects(mask)
    path = tmp_path / "slide.geojson"
    write_objects("geojson", path, layer_from_mask(ids, mask, classes), classes)
    features = json.loads(path.read_text())["features"]
    holed = next(f for f in features if f["geometry"]["type"] == "Polygon" and len(f["geometry"]["coordinates"]) == 2)
    assert holed["properties"]["classification"]["name"] == "nucleus"
    outer = np.array(holed["geometry"]["coordinates"][0])
    assert outer[:, 0].min() <= 0.5 and outer[:, 1].min() <= 0.5  # reaches the image's top-left corner
    assert {f["properties"]["classification"]["name"] for f in features} == {"nucleus", "mitosis"}
    assert any(f["geometry"]["type"] == "MultiPolygon" for f in features)  # the corner-touching staircase


def test_qupath_annotations_import_into_a_mask_with_new_classes(tmp_path, classes):
    # What QuPath writes for a 10 x 10 px square annotation at (10, 20) classified "Tumor", with a hole.
    square = [[10, 20], [20, 20], [20, 30], [10, 30], [10, 20]]
    hole = [[13, 23], [16, 23], [16, 26], [13, 26], [13, 23]]
    data = [
        {"type": "Feature", "id": "a1", "geometry": {"type": "Polygon", "coordinates": [square, hole]},
         "properties": {"objectType": "annotation", "classification": {"name": "Tumor", "color": [200, 0, 0]}}},
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [5, 5]}, "properties": {}},
        {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [3, 0], [3, 2], [0, 2]]]},
         "properties": {"objectType": "annotation"}},
    ]
    path = tmp_path / "qupath.geojson"
    path.write_text(json.dumps(data))
    layer = read_objects(path, shape=(40, 40))
    assert layer.skipped == 1
    mask, table = layer_to_mask(layer, classes)
    tumor = next(c.id for c in table if c.name == "Tumor")
    expected = np.zeros((40, 40), bool)
    expected[20:30, 10:20] = True
    expected[23:26, 13:16] = False
    assert np.array_equal(mask == tumor, expected)
    assert np.count_nonzero(mask == 1) == 6  # the unclassified 3 x 2 box takes the first class
    assert "Tumor" not in classes.names()  # the caller's table is not changed behind its back


def test_instance_tiff_is_uint16_while_ids_fit_and_uint32_beyond(tmp_path, classes):
    ids = np.zeros((4, 70000 // 4 + 1), np.uint32)
    ids.ravel()[:70000] = np.arange(1, 70001)
    mask = (ids > 0).astype(np.uint8)
    path = tmp_path / "many_objects.tif"
    write_objects("instances", path, layer_from_mask(ids, mask, classes), classes)
    assert tifffile.imread(path).dtype == np.uint32
    small = tmp_path / "few_objects.tif"
    write_objects("instances", small, layer_from_mask(connected_objects(awkward_mask()), awkward_mask(), classes),
                  classes)
    assert tifffile.imread(small).dtype == np.uint16


def test_label_tiff_from_another_tool_reads_as_objects_without_classes(tmp_path, classes):
    ids = np.zeros((10, 10), np.int32)
    ids[2:4, 2:4] = 5
    path = tmp_path / "cellpose_masks.tif"
    tifffile.imwrite(path, ids)
    layer = read_objects(path)
    mask, _ = layer_to_mask(layer, classes)
    assert np.array_equal(mask == 1, ids == 5)


def test_imagej_zip_holds_one_named_roi_per_object(tmp_path, classes):
    mask = awkward_mask()
    ids = connected_objects(mask)
    path = tmp_path / "slide_rois.zip"
    write_objects("imagej", path, layer_from_mask(ids, mask, classes), classes)
    names = zipfile.ZipFile(path).namelist()
    assert len(names) == ids.max()
    assert "00001-nucleus.roi" in names


def test_broken_files_are_named_with_the_reason(tmp_path):
    bad = tmp_path / "broken.geojson"
    bad.write_text("{not json")
    with pytest.raises(ObjectFileError, match="broken.geojson: not valid JSON: .* at line 1, column 2"):
        read_objects(bad, shape=(10, 10))
    with pytest.raises(ObjectFileError, match="not a file of objects"):
        read_objects(tmp_path / "notes.txt")
    zipped = tmp_path / "empty_rois.zip"
    zipped.write_bytes(b"PK nonsense")
    with pytest.raises(ObjectFileError, match="ImageJ ROI"):
        read_objects(zipped, shape=(10, 10))


def test_omezarr_records_pixel_size_and_the_image(tmp_path, classes):
    zarr = pytest.importorskip("zarr")
    mask = awkward_mask()
    pixels = np.random.default_rng(0).integers(0, 255, mask.shape + (2,), dtype=np.uint8)
    path = tmp_path / "slide.ome.zarr"
    write_objects("omezarr", path, layer_from_mask(connected_objects(mask), mask, classes), classes,
                  pixels=pixels, pixel_size_um=0.325)
    root = zarr.open_group(str(path), mode="r")
    assert np.array_equal(root["0"][...], np.moveaxis(pixels, 2, 0))
    scale = root.attrs["multiscales"][0]["datasets"][0]["coordinateTransformations"][0]["scale"]
    assert scale == [1.0, 0.325, 0.325]
    assert root["labels"].attrs["labels"] == ["objects"]
    # Writing again over the same folder replaces it whole, leaving no temporary folder behind.
    write_objects("omezarr", path, layer_from_mask(connected_objects(mask), mask, classes), classes)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["slide.ome.zarr"]


SQUARE = [[1, 1], [5, 1], [5, 5], [1, 5], [1, 1]]


@pytest.mark.parametrize(("content", "reason"), [
    ({"type": "Topology", "objects": {}}, "not GeoJSON: expected a FeatureCollection, a Feature or a geometry, "
                                          "found an object of type 'Topology'"),
    ({"cells": []}, "found an object with the keys cells"),
    ({"type": "FeatureCollection", "features": {"a": 1}}, "has no list of features"),
    ([{"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [SQUARE]}}, "cell"],
     "item 2 is a str, not a GeoJSON feature"),
    ([{"type": "Feature", "geometry": {"type": "Circle", "radius": 3}}], "feature 1 has a geometry of unknown type"),
    ([{"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[1, 2, 3]]}}],
     "feature 1 has a ring that is not a list of \\[x, y\\] points"),
    ([{"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[["a", 1], [2, 2], [3, 1]]]}}],
     "feature 1 has a ring that is not a list"),
    ({"type": "Polygon", "coordinates": [[[1, 1], [5, 1], [5, 1e999], [1, 1]]]}, "not finite numbers"),
    ({"type": "Polygon", "coordinates": [[[100, 100], [150, 100], [150, 150], [100, 100]]]},
     "none of its 1 objects lies on the image \\(10 x 10 pixels\\)"),
])
def test_malformed_geojson_is_refused_naming_the_file_and_what_is_wrong(tmp_path, content, reason):
    path = tmp_path / "from_qupath.geojson"
    path.write_text(json.dumps(content))
    with pytest.raises(ObjectFileError, match=f"from_qupath.geojson: .*{reason}"):
        read_objects(path, shape=(10, 10))


def test_geojson_reading_reports_progress_and_stops_when_cancelled(tmp_path):
    from segstudio.core.objects.formats import ObjectsCancelled

    features = [{"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [
        [[x, y], [x + 2, y], [x + 2, y + 2], [x, y + 2], [x, y]]]}} for x in range(0, 40, 4) for y in range(0, 40, 4)]
    path = tmp_path / "many.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    seen = []
    layer = read_objects(path, shape=(40, 40), progress=lambda done, total: seen.append((done, total)))
    assert layer.ids.max() == 100
    assert seen[-1] == (200, 200) and [d for d, _ in seen] == sorted(d for d, _ in seen)
    asked = []
    with pytest.raises(ObjectsCancelled):
        read_objects(path, shape=(40, 40), cancelled=lambda: asked.append(1) or len(asked) > 30)
    assert len(asked) == 31  # it stopped at the first check after the answer turned
