"""A slide's labels for other tools: an OME-Zarr label pyramid read back with zarr, and QuPath GeoJSON
written tile by tile with objects across tile borders coming out once."""
import json

import cv2
import numpy as np
import pytest
import zarr

from segstudio.core.label_store import LabelStore
from segstudio.core.objects.formats import geojson
from segstudio.core.objects.formats import slide_labels as sl

NAMES = {1: "nucleus", 2: "stroma"}
COLOURS = {1: (255, 0, 0), 2: (0, 160, 0)}


def _store(labels: np.ndarray) -> LabelStore:
    store = LabelStore(*labels.shape, pyramid=False)
    store.put(0, 0, labels)
    return store


def _known_slide():
    """3000 x 2500 labels: nuclei (discs of radius 12) on and off tile borders and at the slide's edges,
    and one stroma band crossing several tiles."""
    labels = np.zeros((2500, 3000), np.uint8)
    centres = [(100, 100), (512, 700), (1024, 1024), (1030, 2047), (2047, 2048), (2490, 2990), (5, 1500),
               (1800, 300), (1500, 2600)]
    for y, x in centres:
        cv2.circle(labels, (x, y), 12, 1, -1)
    labels[1200:1260, 200:2900] = 2  # 2700 px long: larger than the margin, crosses tile borders
    return labels, len(centres)


def test_omezarr_round_trip_has_ngff_multiscales_and_the_pixels(tmp_path, monkeypatch):
    monkeypatch.setattr(sl, "LABEL_SMALLEST", 512)
    labels, _ = _known_slide()
    path = tmp_path / "labels.ome.zarr"
    levels = sl.write_omezarr(path, _store(labels), NAMES, COLOURS, pixel_size_um=0.25, name="tissue")
    assert levels == 4  # 3000 -> 1500 -> 750 -> 375

    root = zarr.open_group(str(path), mode="r")
    assert root.metadata.zarr_format == 2  # NGFF 0.4 is zarr format 2
    assert root["labels"].attrs["labels"] == ["tissue"]
    group = root["labels/tissue"]
    (multiscale,) = group.attrs["multiscales"]
    assert multiscale["version"] == "0.4"
    assert [a["name"] for a in multiscale["axes"]] == ["y", "x"]
    assert all(a["type"] == "space" and a["unit"] == "micrometer" for a in multiscale["axes"])
    datasets = multiscale["datasets"]
    assert [d["path"] for d in datasets] == ["0", "1", "2", "3"]
    assert [d["coordinateTransformations"][0]["scale"] for d in datasets] == [[0.25, 0.25], [0.5, 0.5], [1.0, 1.0],
                                                                              [2.0, 2.0]]
    label = group.attrs["image-label"]
    assert {p["label-value"]: p["class"] for p in label["properties"]} == NAMES
    assert {c["label-value"]: c["rgba"] for c in label["colors"]} == {1: [255, 0, 0, 255], 2: [0, 160, 0, 255]}
    assert np.array_equal(group["0"][...], labels)
    for k in range(1, 4):
        step = 2 ** k
        assert np.array_equal(group[str(k)][...], labels[::step, ::step])
    # Chunks of nothing but background are not written; nested chunk folders as NGFF 0.4 asks.
    assert (path / "labels/tissue/0/1/1").is_file() and not (path / "labels/tissue/0/2/0").exists()
    assert not list(tmp_path.glob(".*.tmp"))


def test_omezarr_export_cancelled_leaves_nothing_under_the_name(tmp_path):
    labels, _ = _known_slide()
    with pytest.raises(sl.ExportCancelled):
        sl.write_omezarr(tmp_path / "l.ome.zarr", _store(labels), NAMES, COLOURS, cancel=lambda: True)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("tile,margin", [(512, 64), (1024, 256)])
def test_geojson_has_each_nucleus_once_and_the_band_in_tile_pieces(tmp_path, monkeypatch, tile, margin):
    monkeypatch.setattr(sl, "TILE", tile)
    monkeypatch.setattr(sl, "MARGIN", margin)
    labels, nuclei = _known_slide()
    path = tmp_path / "objects.geojson"
    written = sl.write_geojson(path, _store(labels), NAMES, COLOURS)
    features = json.loads(path.read_text())["features"]
    assert written == len(features)
    classes = [f["properties"]["classification"]["name"] for f in features]
    assert classes.count("nucleus") == nuclei  # every disc once, whole, borders or not
    assert not any(f["properties"].get("piece") for f in features if f["properties"]["class_id"] == 1)
    band_tiles = len(range(200 // tile, 2899 // tile + 1)) * len(range(1200 // tile, 1259 // tile + 1))
    assert classes.count("stroma") == band_tiles
    # Painted back, the features cover exactly the labelled pixels, in slide coordinates.
    back = geojson.read(path, labels.shape)
    assert np.array_equal(back.ids > 0, labels > 0)
    disc = next(f for f in features if f["properties"]["class_id"] == 1
                and min(p[0] for p in f["geometry"]["coordinates"][0]) > 2000)  # the one at (2047, 2048)
    xs = [p[0] for p in disc["geometry"]["coordinates"][0]]
    assert min(xs) < 2048 < max(xs)  # across the tile border, in one piece
