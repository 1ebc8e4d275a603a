"""The numbers a lab reads off its objects: areas in pixels and micrometres, intensities, counts, densities."""
from __future__ import annotations

import csv
import io

import numpy as np
import pytest

from segstudio.core.labels import ClassTable
from segstudio.core.objects.measure import measure_objects, remeasure, summarise, table_csv, write_csv


@pytest.fixture
def scene():
    ids = np.zeros((100, 200), np.uint16)
    ids[10:20, 10:20] = 1  # 100 px
    ids[50:54, 100:125] = 2  # 100 px
    ids[80:90, 180:190] = 3
    mask = np.where(ids == 3, 2, ids > 0).astype(np.uint8)
    pixels = np.zeros((100, 200, 2), np.uint16)
    pixels[10:20, 10:20, 0] = 1000
    pixels[15, 15, 0] = 4000
    classes = ClassTable.default()
    classes.add("mitosis")
    hand = np.zeros(ids.shape, bool)
    hand[52, 110] = True
    return ids, mask, pixels, classes, hand


def test_rows_hold_area_um2_intensity_and_who_drew_it(scene):
    ids, mask, pixels, classes, hand = scene
    table = measure_objects(ids, mask, classes, pixels=pixels, channel_names=["DAPI", "GFP"], pixel_size_um=0.5,
                            hand=hand, model_version="nuclei-unet/v1", image="a.tif")
    first, second, third = table.rows
    assert first["area_px"] == 100 and first["area_um2"] == 25.0
    assert first["mean DAPI"] == pytest.approx((99 * 1000 + 4000) / 100) and first["max DAPI"] == 4000
    assert (first["centroid_x"], first["centroid_y"]) == (14.5, 14.5)
    assert second["corrected"] and not first["corrected"]
    assert third["class"] == "mitosis" and first["model"] == "nuclei-unet/v1"
    assert "area_um2" in table.columns and "mean GFP" in table.columns


def test_without_a_pixel_size_there_are_no_micrometre_columns(scene):
    ids, mask, _, classes, _ = scene
    table = measure_objects(ids, mask, classes)
    assert "area_um2" not in table.columns
    assert summarise(table)[0]["density_per_mm2"] is None


def test_summary_counts_and_densities_per_class(scene):
    ids, mask, _, classes, _ = scene
    table = measure_objects(ids, mask, classes, pixel_size_um=1.0, image="a.tif")
    summary = {row["class"]: row for row in summarise(table)}
    # 100 x 200 px at 1 um is 0.02 mm^2
    assert summary["nucleus"]["count"] == 2 and summary["nucleus"]["density_per_mm2"] == pytest.approx(100.0)
    assert summary["mitosis"]["count"] == 1


def test_csv_has_one_row_per_object_of_every_image(scene, tmp_path):
    ids, mask, _, classes, _ = scene
    a = measure_objects(ids, mask, classes, image="a.tif")
    b = measure_objects(ids[:50], mask[:50], classes, image="b.tif")
    rows = list(csv.DictReader(io.StringIO(table_csv([a, b]))))
    assert [r["image"] for r in rows] == ["a.tif"] * 3 + ["b.tif"]
    write_csv(tmp_path / "t.csv", [a])
    assert (tmp_path / "t.csv").read_text().startswith("image,id,class,area_px")


def test_a_bad_pixel_size_is_refused(scene):
    ids, mask, _, classes, _ = scene
    with pytest.raises(ValueError, match="pixel size"):
        measure_objects(ids, mask, classes, pixel_size_um=0.0)


def test_remeasure_after_an_edit_matches_measuring_everything_again(scene):
    ids, mask, pixels, classes, hand = scene
    options = {"pixels": pixels, "pixel_size_um": 0.5, "hand": hand}
    table = measure_objects(ids, mask, classes, **options)
    ids, mask = ids.copy(), mask.copy()
    ids[15:25, 15:22] = 1  # object 1 grows
    mask[15:25, 15:22] = 1
    ids[80:90, 180:190] = 0  # object 3 is deleted
    mask[80:90, 180:190] = 0
    remeasure(table, ids, mask, classes, (15, 15, 25, 22), **options)
    remeasure(table, ids, mask, classes, (80, 180, 90, 190), **options)
    assert table.rows == measure_objects(ids, mask, classes, **options).rows
