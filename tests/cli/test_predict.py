"""`segstudio predict`: masks for files and folders, bad files reported and skipped, exit status."""
from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest

from segstudio.cli.predict import OutputNames, ProgressBar, expand_inputs

SUFFIXES = (".png", ".tif", ".tiff")


# --- pieces that need no model -----------------------------------------------------------------------
def test_folders_expand_to_their_supported_images_and_missing_paths_are_listed(tmp_path):
    folder = tmp_path / "slides"
    folder.mkdir()
    for name in ("b.TIF", "a.png", "notes.txt", "c.tiff"):
        (folder / name).write_bytes(b"x")
    (folder / "sub").mkdir()
    (folder / "sub" / "deep.png").write_bytes(b"x")
    odd = tmp_path / "named-directly.dat"
    odd.write_bytes(b"x")

    files, missing = expand_inputs([folder, odd, folder / "a.png", tmp_path / "gone.png"], SUFFIXES)

    assert [f.name for f in files] == ["a.png", "b.TIF", "c.tiff", "named-directly.dat"]
    assert missing == [tmp_path / "gone.png"]


def test_output_names_do_not_collide():
    names = OutputNames()
    assert names.claim(Path("x/a.png")) == "a"
    assert names.claim(Path("x/a.tif")) == "a.tif"
    assert names.claim(Path("y/a.png")) == "a.png"
    assert names.claim(Path("y/A.tif")) == "A-2"
    assert names.claim(Path("z/a.png")) == "a-3"
    assert names.claim(Path("y/b.png")) == "b"


def test_progress_bar_redraws_tiles_and_images_on_a_terminal():
    stream = io.StringIO()
    bar = ProgressBar(stream, total_images=3, interactive=True, width=10)
    bar.start_image(2, "cells.tif")
    bar.update_tiles(5, 10)
    assert stream.getvalue().endswith("\r[2/3] cells.tif [#####-----] 5/10 tiles")
    bar.report("note: something")
    bar.finish_image("cells.tif -> cells_mask.png (10 tiles)")
    lines = [line for line in stream.getvalue().replace("\r", "\n").splitlines() if line.strip()]
    assert lines[-2] == "note: something"
    assert lines[-1].startswith("[2/3] cells.tif -> cells_mask.png (10 tiles) in ")


def test_progress_bar_in_a_log_writes_one_line_per_image_and_nothing_when_quiet():
    log = io.StringIO()
    bar = ProgressBar(log, total_images=1, interactive=False)
    bar.start_image(1, "a.png")
    bar.update_tiles(1, 4)
    bar.finish_image("a.png -> a_mask.png (4 tiles)")
    assert "\r" not in log.getvalue() and log.getvalue().count("\n") == 1

    quiet = io.StringIO()
    bar = ProgressBar(quiet, total_images=1, enabled=False, interactive=True)
    bar.start_image(1, "a.png")
    bar.update_tiles(1, 4)
    bar.finish_image("a.png -> a_mask.png (4 tiles)")
    bar.report("error: shown anyway")
    assert quiet.getvalue() == "error: shown anyway\n"


# --- the command with a real model ---------------------------------------------------------------------
def tiny_unet():
    """The 3-class test network of the command-line tests (2 levels, 4 base channels)."""
    from segstudio.models.registry import build_model

    return build_model("unet", in_channels=1, num_classes=3, depth=2, base_channels=4)


def save_cli_model(tmp_path, model):
    """`model` saved as cli-test v1 with classes bg, a, b; returns the file."""
    from segstudio.models.checkpoint import ModelMeta, save_checkpoint

    classes = [{"id": i, "name": n, "color": [40 * i, 80, 120]} for i, n in enumerate(["bg", "a", "b"])]
    meta = ModelMeta(name="cli-test", version=1, arch="unet", config=dict(model.config), classes=classes,
                     in_channels=1)
    path = tmp_path / "cli-test.safetensors"
    save_checkpoint(path, model, meta)
    return path


@pytest.fixture
def model_file(tmp_path):
    return save_cli_model(tmp_path, tiny_unet())


@pytest.fixture
def slides(tmp_path, rng):
    import tifffile

    folder = tmp_path / "slides"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), rng.integers(0, 255, (40, 50), dtype=np.uint8))
    tifffile.imwrite(folder / "b.tif", rng.integers(0, 4000, (33, 70), dtype=np.uint16))
    (folder / "readme.txt").write_text("not an image")
    return folder


def _run(*argv: str) -> int:
    from segstudio.cli import main

    return main(["predict", *argv])


def test_predict_writes_masks_and_confidence_for_a_folder(model_file, slides, tmp_path, capsys):
    out = tmp_path / "out"
    code = _run(str(slides), "--model", str(model_file), "--out", str(out), "--tile", "32", "--confidence")
    err = capsys.readouterr().err

    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "a_confidence.png", "a_mask.png", "b_confidence.png", "b_mask.png"]
    mask_a = cv2.imread(str(out / "a_mask.png"), cv2.IMREAD_UNCHANGED)
    mask_b = cv2.imread(str(out / "b_mask.png"), cv2.IMREAD_UNCHANGED)
    confidence = cv2.imread(str(out / "a_confidence.png"), cv2.IMREAD_UNCHANGED)
    assert mask_a.shape == (40, 50) and mask_a.dtype == np.uint8 and mask_a.max() < 3
    assert mask_b.shape == (33, 70)
    assert confidence.shape == (40, 50) and confidence.dtype == np.uint8 and confidence.min() >= 255 // 3
    assert "2 of 2 images predicted, 0 failed" in err

    # The file holds what the engine predicts for that image with those settings.
    from segstudio.core.imageio import read_image
    from segstudio.engine.predict import Predictor, PredictSettings
    from segstudio.models.library import ModelLibrary

    model, meta = ModelLibrary().load(str(model_file))
    expected = Predictor(model, meta, device="cpu").predict(read_image(slides / "a.png").pixels,
                                                             PredictSettings(tile=32))
    assert np.array_equal(mask_a, expected.labels)


def test_a_bad_file_is_reported_and_the_rest_still_predicted(model_file, slides, tmp_path, capsys):
    (slides / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not a png")
    out = tmp_path / "out"
    code = _run(str(slides), str(tmp_path / "missing.tif"), "--model", str(model_file), "--out", str(out),
                "--quiet")
    err = capsys.readouterr().err

    assert code == 1
    assert sorted(p.name for p in out.iterdir()) == ["a_mask.png", "b_mask.png"]
    assert f"Cannot open {slides / 'broken.png'}" in err
    assert "missing.tif: no such file or folder" in err
    assert err.strip().splitlines()[-1].startswith("2 of 4 images predicted, 2 failed")


def test_an_unknown_model_stops_before_any_work(tmp_path, slides, capsys):
    try:
        import segstudio.models.library  # noqa: F401
    except ImportError:
        pytest.skip("model library not available")
    out = tmp_path / "out"
    code = _run(str(slides), "--model", "no-such-model", "--out", str(out))
    assert code == 2
    assert "no-such-model" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.filterwarnings("error::RuntimeWarning")  # an untrained model's all-nucleus mask once gave NaN seeds
def test_objects_flag_writes_an_instance_tiff_beside_each_mask(model_file, slides, tmp_path):
    import tifffile

    out = tmp_path / "out"
    assert _run(str(slides / "a.png"), "--model", str(model_file), "--out", str(out), "--tile", "32",
                "--objects") == 0
    mask = cv2.imread(str(out / "a_mask.png"), cv2.IMREAD_UNCHANGED)
    ids = tifffile.imread(out / "a_objects.tif")
    assert ids.dtype == np.uint16 and ids.shape == mask.shape
    assert np.array_equal(ids > 0, mask > 0)  # every labelled pixel is in an object, background in none


def test_objects_of_a_model_with_a_boundary_output_are_split_along_its_border(tmp_path, monkeypatch):
    import tifffile

    from tests.engine.predict import boundary_net

    model = boundary_net.save(tmp_path / "borders.safetensors", monkeypatch)
    image = tmp_path / "pair.png"
    cv2.imwrite(str(image), boundary_net.two_touching_squares())
    out = tmp_path / "out"
    assert _run(str(image), "--model", str(model), "--out", str(out), "--tile", "32", "--objects") == 0
    ids = tifffile.imread(out / "pair_objects.tif")
    assert ids.max() == 2 and ids[30, 25] != ids[30, 55]  # the distance transform alone makes one rectangle


# --- what each image feeds the model -----------------------------------------------------------------
@pytest.mark.usefixtures("single_torch_thread")
def test_an_h_and_e_image_is_warned_about_and_input_he_finds_its_nuclei(tmp_path, capsys):
    from segstudio.core import paths
    from segstudio.synth import iou

    sample = paths.samples_dir() / "he_nuclei.png"
    truth = cv2.imread(str(sample.parent / "truth" / "he_nuclei.png"), cv2.IMREAD_UNCHANGED) > 0
    assert _run(str(sample), "--model", "nuclei-unet", "--out", str(tmp_path / "grey"), "--quiet") == 0
    err = capsys.readouterr().err
    assert "warning: he_nuclei.png: This is a colour image" in err and "(add --input he)" in err
    assert _run(str(sample), "--model", "nuclei-unet", "--out", str(tmp_path / "he"), "--quiet", "--input", "he") == 0
    assert "warning" not in capsys.readouterr().err
    mask = cv2.imread(str(tmp_path / "he" / "he_nuclei_mask.png"), cv2.IMREAD_UNCHANGED) > 0
    assert iou(mask, truth) > 0.5
    assert _run(str(sample), "--model", "nuclei-unet", "--out", str(tmp_path / "x"), "--input", "rgb") == 2
    assert "--input rgb gives the model 3 channels, but nuclei-unet/v1 reads 1" in capsys.readouterr().err


@pytest.mark.usefixtures("single_torch_thread")
def test_a_stack_feeds_a_nuclei_model_its_dapi_channel_as_the_window_does(tmp_path, capsys):
    import tifffile

    from segstudio.engine.predict import Predictor, PredictSettings
    from segstudio.models.library import ModelLibrary
    from segstudio.synth import generate_nuclei_image

    dapi, _, _ = generate_nuclei_image(4, height=96, width=96, bit_depth=16)
    gfp = np.full_like(dapi, 300)
    gfp[20:60, 10:80] = 9000  # a bright patch that is no nucleus
    path = tmp_path / "stack.ome.tif"
    tifffile.imwrite(path, np.stack([gfp, dapi]), ome=True,
                     metadata={"axes": "CYX", "Channel": {"Name": ["GFP", "DAPI"]}})
    assert _run(str(path), "--model", "nuclei-unet", "--out", str(tmp_path / "out"), "--quiet") == 0
    mask = cv2.imread(str(tmp_path / "out" / "stack.ome_mask.png"), cv2.IMREAD_UNCHANGED)
    model, meta = ModelLibrary().load("nuclei-unet")
    expected = Predictor(model, meta, device="cpu").predict(dapi, PredictSettings()).labels
    np.testing.assert_array_equal(mask, expected)
    assert "warning" not in capsys.readouterr().err
