"""`segstudio measure`: a CSV row per object of every image, in micrometres when the file has a pixel size."""
from __future__ import annotations

import csv

import cv2
import numpy as np
import tifffile

from segstudio.cli import main


def test_measure_writes_rows_and_a_summary_with_densities(tmp_path, capsys):
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    mask = np.zeros((100, 100), np.uint8)
    cv2.circle(mask, (30, 50), 12, 1, -1)
    cv2.circle(mask, (52, 50), 12, 1, -1)  # touching: two objects, not one
    pixels = mask.astype(np.uint16) * 1000
    tifffile.imwrite(images / "a.tif", pixels, imagej=True, resolution=(2.0, 2.0), metadata={"unit": "micron"})
    cv2.imwrite(str(masks / "a_mask.png"), mask)
    cv2.imwrite(str(images / "b.png"), np.zeros((10, 10), np.uint8))  # no mask: named, others measured
    table, summary = tmp_path / "objects.csv", tmp_path / "summary.csv"
    code = main(["measure", str(images), "--masks", str(masks), "--out", str(table), "--summary", str(summary)])
    assert code == 1
    captured = capsys.readouterr()
    assert "b.png: no mask" in captured.err
    rows = list(csv.DictReader(table.open()))
    assert len(rows) == 2 and {r["image"] for r in rows} == {"a.tif"}
    assert float(rows[0]["area_um2"]) == float(rows[0]["area_px"]) * 0.25  # 0.5 um pixels from the file
    assert float(rows[0]["mean channel 1"]) == 1000.0
    (entry,) = list(csv.DictReader(summary.open()))
    assert entry["count"] == "2" and float(entry["density_per_mm2"]) == 2 / (100 * 100 * 0.25 / 1e6)
    assert "a.tif: 2 nucleus objects" in captured.out


def test_pixel_size_option_overrides_the_file(tmp_path):
    (tmp_path / "m").mkdir()
    cv2.imwrite(str(tmp_path / "x.png"), np.zeros((20, 20), np.uint8))
    mask = np.zeros((20, 20), np.uint8)
    mask[5:10, 5:10] = 1
    cv2.imwrite(str(tmp_path / "m" / "x_mask.png"), mask)
    out = tmp_path / "t.csv"
    assert main(["measure", str(tmp_path / "x.png"), "--masks", str(tmp_path / "m"), "--out", str(out),
                 "--pixel-size", "2"]) == 0
    (row,) = list(csv.DictReader(out.open()))
    assert float(row["area_um2"]) == 100.0
