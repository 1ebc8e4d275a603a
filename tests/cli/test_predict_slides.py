"""`segstudio predict SLIDE --out labels.zarr`: a whole slide into chunked labels; a rerun resumes."""
from __future__ import annotations

import json

import numpy as np
import pytest

from segstudio.cli import main
from segstudio.core.label_store import LabelStore
from segstudio.core.run_marks import MARKS_FILE
from segstudio.engine.predict import slide as slide_predict
from segstudio.synth.slides import TissuePatch, write_pyramid_ome
from tests.cli.test_predict import save_cli_model, tiny_unet

H, W = 1500, 2100


@pytest.fixture
def model_file(tmp_path):
    """A network that calls every pixel class 1, so labels show exactly where tiles ran."""
    import torch

    model = tiny_unet()
    last = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)][-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.copy_(torch.tensor([0.0, 5.0, 0.0]))
    return save_cli_model(tmp_path, model)


@pytest.fixture
def slide_file(tmp_path):
    return write_pyramid_ome(tmp_path / "case.ome.tif", H, W, levels=3, factor=4, tile=256,
                             patches=[TissuePatch(600, 700, 300, 400)])


def test_a_slide_is_predicted_into_a_chunked_store_and_a_rerun_skips_it(model_file, slide_file,
                                                                        tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(slide_predict, "STRIP", 1024)
    monkeypatch.setattr(slide_predict, "BLOCK", 512)
    out = tmp_path / "labels.zarr"
    code = main(["predict", str(slide_file), "--model", str(model_file), "--out", str(out), "--tile", "128"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "case.ome.tif -> " in err and "of glass skipped" in err
    labels = LabelStore(H, W, out).read(0, 0, H, W)
    assert (labels[450:750, 500:900] == 1).all()  # the tissue got labels
    assert not labels[1300:, 1800:].any()  # the far corner is glass
    marks = json.loads((out / MARKS_FILE).read_text())
    assert marks["complete"] and marks["done"]

    code = main(["predict", str(slide_file), "--model", str(model_file), "--out", str(out), "--tile", "128"])
    assert code == 0
    assert "already predicted" in capsys.readouterr().err
    assert np.array_equal(LabelStore(H, W, out).read(0, 0, H, W), labels)


def test_two_slides_go_to_a_folder_each(model_file, slide_file, tmp_path, capsys):
    other = write_pyramid_ome(tmp_path / "other.ome.tif", 900, 900, levels=2, factor=4, tile=256,
                              patches=[TissuePatch(450, 450, 200, 200)])
    out = tmp_path / "out"
    code = main(["predict", str(slide_file), str(other), "--model", str(model_file), "--out", str(out),
                 "--tile", "128", "--quiet"])
    assert code == 0, capsys.readouterr().err
    assert (out / "case.labels.zarr" / MARKS_FILE).exists() and (out / "other.labels.zarr" / MARKS_FILE).exists()


def test_out_ome_zarr_writes_an_ngff_label_pyramid_beside_the_resumable_store(model_file, slide_file, tmp_path,
                                                                            capsys):
    import zarr

    from segstudio.core.objects.formats.slide_labels import read_omezarr

    out = tmp_path / "labels.ome.zarr"
    code = main(["predict", str(slide_file), "--model", str(model_file), "--out", str(out), "--tile", "128"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "OME-Zarr labels, 3 levels" in err and "labels.ome.zarr/labels/case" in err
    store = LabelStore(H, W, tmp_path / "labels.labels.zarr").read(0, 0, H, W)  # kept for a rerun
    group = zarr.open_group(str(out / "labels" / "case"), mode="r")
    assert group.attrs["multiscales"][0]["version"] == "0.4"
    assert [d["path"] for d in group.attrs["multiscales"][0]["datasets"]] == ["0", "1", "2"]  # 2100, 1050, 525 px wide
    pixels = read_omezarr(out, "case")
    assert np.array_equal(pixels, store) and (pixels[450:750, 500:900] == 1).all()
    assert np.array_equal(read_omezarr(out, "case", 1), store[::2, ::2])


def test_out_geojson_writes_the_objects_in_slide_pixels(model_file, slide_file, tmp_path, capsys):
    out = tmp_path / "objects.geojson"
    code = main(["predict", str(slide_file), "--model", str(model_file), "--out", str(out), "--tile", "128"])
    err = capsys.readouterr().err
    assert code == 0, err
    features = json.loads(out.read_text())["features"]
    assert "objects.geojson: " in err and len(features) >= 1
    xs = [x for f in features for ring in f["geometry"]["coordinates"] for x, _y in ring]
    assert min(xs) < 700 and max(xs) > 1100  # the tissue patch, 700-1100 px across, in level-0 pixels


def test_a_colour_slide_for_a_one_channel_model_is_said_and_input_he_feeds_the_hematoxylin(model_file, slide_file,
                                                                                          tmp_path, capsys):
    out = tmp_path / "grey.zarr"
    assert main(["predict", str(slide_file), "--model", str(model_file), "--out", str(out), "--tile", "128"]) == 0
    assert "warning: case.ome.tif: a colour slide" in capsys.readouterr().err
    out = tmp_path / "he.zarr"
    assert main(["predict", str(slide_file), "--model", str(model_file), "--out", str(out), "--tile", "128",
                 "--input", "he"]) == 0
    err = capsys.readouterr().err
    assert "warning" not in err and "case.ome.tif -> " in err
