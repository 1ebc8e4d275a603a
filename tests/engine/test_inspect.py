"""The inspector's engine: bounded regions, one pass with taps, statistics, alignment with the image,
comparisons chosen from the structure the taps declare, the pixel probe and tap export."""
import json

import numpy as np
import pytest
import tifffile
import torch
import torch.nn as nn
import torch.nn.functional as F

from segstudio.engine import inspect as insp
from segstudio.engine.inspect import (
    TapInspector,
    channel_stats,
    comparisons,
    plan_region,
    probe_pixel,
    region_input,
    save_tap,
    sort_channels,
    to_input_grid,
)
from segstudio.models.registry import build_model
from segstudio.models.taps import TapSpec, list_taps, run_with_taps
from tests.models.conftest import TINY_CONFIGS

pytestmark = pytest.mark.usefixtures("single_torch_thread")

TINY = TINY_CONFIGS  # the same tiny variants as the architecture tests
NO_NORMALISATION = {"kind": "none"}


class _Meta:
    """The fields of ModelMeta the inspector reads."""

    def __init__(self, in_channels=1, classes=None, normalisation=None, id="test/v1", arch=""):
        self.in_channels = in_channels
        self.classes = classes or [{"id": 0, "name": "background"}, {"id": 1, "name": "nucleus"}]
        self.normalisation = normalisation or NO_NORMALISATION
        self.id = id
        self.arch = arch


class AlignNet(nn.Module):
    """Taps whose values are known: the input itself (stride 1), its 2x2 and 4x4 block means.

    The head turns the input value v into class scores (-10 v + 5, 10 v - 5), so p(class 1) = sigmoid(20 v - 10).
    """

    arch = "align-test"
    stride = 4

    def __init__(self):
        super().__init__()
        self.config = {"in_channels": 1, "num_classes": 2}
        # (`half` would shadow nn.Module.half, so the modules are named by their pooling.)
        self.identity = nn.Identity()
        self.pool2 = nn.AvgPool2d(2)
        self.pool4 = nn.AvgPool2d(2)
        self.head = nn.Conv2d(1, 2, 1)
        with torch.no_grad():
            self.head.weight.copy_(torch.tensor([-10.0, 10.0]).reshape(2, 1, 1, 1))
            self.head.bias.copy_(torch.tensor([5.0, -5.0]))
        self.output = nn.Identity()

    def forward(self, x):
        same = self.identity(x)
        coarse = self.pool4(self.pool2(same))
        # The pooled maps feed the result (with weight 0) so they are computed in the same pass.
        return self.output(self.head(same + 0.0 * F.interpolate(coarse, size=x.shape[-2:])))

    def tap_specs(self):
        return [
            TapSpec("same", "encoder", "identity", "The input itself."),
            TapSpec("half", "encoder", "pool2", "2x2 block means."),
            TapSpec("quarter", "context", "pool4", "4x4 block means."),
            TapSpec("logits", "logits", "output", "Class scores."),
        ]


def smooth_image(h=96, w=128, period=24.0):
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    return (0.5 + 0.4 * np.sin(2 * np.pi * x / period) * np.cos(2 * np.pi * y / (period * 1.3)))[..., None]


def tiny(name, num_classes=2, seed=0):
    torch.manual_seed(seed)
    return build_model(name, in_channels=1, num_classes=num_classes, **TINY[name])


# --- regions -------------------------------------------------------------------------------------------
def test_small_view_is_covered_whole_at_full_resolution_in_stride_multiples():
    region = plan_region((300, 400), (37, 21, 150, 90), align=32)
    assert region.step == 1 and region.how == "view"
    assert region.w % 32 == 0 and region.h % 32 == 0
    assert region.x <= 37 and region.x + region.w >= 187 and region.y <= 21 and region.y + region.h >= 111
    assert 0 <= region.x and region.x + region.w <= 400 and 0 <= region.y and region.y + region.h <= 300


def test_large_view_is_centre_cropped_to_the_cap():
    region = plan_region((5000, 7000), (1000, 500, 3000, 2000), max_side=512, mode="crop", align=16)
    assert (region.w, region.h, region.step) == (512, 512, 1)
    assert abs((region.x + region.w / 2) - 2500) <= 1 and abs((region.y + region.h / 2) - 1500) <= 1
    assert "centre 512 x 512" in region.describe() and "3000 x 2000 view" in region.describe()


def test_large_view_downsampled_keeps_the_input_within_the_cap():
    region = plan_region((5000, 7000), (0, 0, 7000, 5000), max_side=512, mode="downsample", align=32)
    in_h, in_w = region.input_shape
    assert region.step == 14 and max(in_h, in_w) <= 512 and in_h % 32 == 0 and in_w % 32 == 0
    assert region.w >= 7000 - 32 * 14 and region.x + region.w <= 7000
    assert "downsampled x14" in region.describe() and "14x smaller" in region.describe()


def test_window_around_a_point_stays_inside_the_image():
    region = plan_region((600, 800), point=(790, 5), max_side=256, align=8)
    assert (region.w, region.h) == (256, 256)
    assert region.contains(790, 5) and region.x + region.w == 800 and region.y == 0


def test_image_smaller_than_one_stride_is_used_whole():
    region = plan_region((20, 30), None, align=32)
    assert region.rect == (0, 0, 30, 20)


def test_view_outside_the_image_is_an_error():
    with pytest.raises(ValueError, match="does not overlap"):
        plan_region((100, 100), (200, 200, 50, 50))


def test_downsampled_input_is_the_block_mean_of_the_prepared_pixels(monkeypatch):
    from segstudio.engine.predict import ModelInput, prepare_input

    pixels = (np.random.default_rng(3).random((90, 130, 1)) * 4000).astype(np.uint16)
    norm = {"kind": "percentile", "low": 1.0, "high": 99.8}
    region = plan_region(pixels.shape[:2], (0, 0, 130, 90), max_side=40, mode="downsample", align=4)
    monkeypatch.setattr(insp, "_INPUT_BAND_BYTES", 1)  # force one row band at a time
    got = region_input(ModelInput(pixels, 1, norm), region)
    whole = prepare_input(pixels, 1, norm)
    k = region.step
    h, w = region.input_shape
    block = whole[:, region.y:region.y + h * k, region.x:region.x + w * k]
    expected = block.reshape(1, h, k, w, k).mean(axis=(2, 4))
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_region_input_uses_whole_image_normalisation():
    """A dim corner is not stretched to full brightness just because it was inspected alone."""
    from segstudio.engine.predict import ModelInput

    pixels = np.full((64, 64, 1), 100, np.uint16)
    pixels[32:, 32:] = 1000
    region = plan_region(pixels.shape[:2], (0, 0, 16, 16))
    values = region_input(ModelInput(pixels, 1, {"kind": "percentile", "low": 1.0, "high": 99.8}), region)
    assert values.max() < 0.05


# --- one pass with taps, every architecture --------------------------------------------------------------
@pytest.mark.parametrize("name", list(TINY))
def test_every_tap_captured_in_network_order_with_its_shape(name):
    model = tiny(name)
    pixels = (np.random.default_rng(0).random((70, 90, 1)) * 255).astype(np.uint8)
    inspector = TapInspector(model, _Meta(), device="cpu")
    region = inspector.plan(pixels.shape[:2], (5, 3, 80, 60))
    inspection = inspector.inspect(pixels, region)
    assert list(inspection.taps) == [s.name for s in list_taps(model)]
    network_input = region_input(inspector.source(pixels), region)
    with torch.no_grad():
        logits, direct = run_with_taps(model.eval(), torch.from_numpy(network_input)[None])
    for tap_name, tensor in direct.items():
        tap = inspection.tap(tap_name)
        assert tap.shape == tuple(tensor.shape[1:])
        np.testing.assert_allclose(tap.tensor, tensor[0].numpy(), rtol=1e-5, atol=1e-5)
        # Every tap grid, scaled back, covers exactly the input (the region is in stride multiples).
        assert round(tap.shape[1] * tap.scale[0]) == network_input.shape[1]
        assert round(tap.shape[2] * tap.scale[1]) == network_input.shape[2]
    np.testing.assert_allclose(inspection.probabilities, F.softmax(logits, 1)[0].numpy(), atol=1e-6)
    assert inspection.class_names == ["background", "nucleus"]


def test_large_image_runs_only_the_capped_region(monkeypatch):
    model = tiny("unet")
    seen = []
    original = model.forward
    monkeypatch.setattr(model, "forward", lambda x: (seen.append(tuple(x.shape)), original(x))[1])
    pixels = np.zeros((3000, 2000, 1), np.uint8)
    inspector = TapInspector(model, _Meta(), device="cpu")
    inspection = inspector.inspect(pixels, inspector.plan(pixels.shape[:2], None, max_side=64))
    assert seen == [(1, 1, 64, 64)]
    assert inspection.tap("enc1").shape[1:] == (64, 64)


def test_big_captures_are_kept_at_half_precision_with_a_note(monkeypatch):
    monkeypatch.setattr(insp, "TAP_MEMORY_BUDGET", 1000)
    model = tiny("unet")
    pixels = (np.random.default_rng(1).random((32, 32, 1)) * 255).astype(np.uint8)
    inspector = TapInspector(model, _Meta(), device="cpu")
    inspection = inspector.inspect(pixels, inspector.plan(pixels.shape[:2]))
    assert all(t.tensor.dtype == np.float16 for t in inspection.taps.values())
    assert any("half precision" in note for note in inspection.notes)
    full = run_with_taps(model.eval(), torch.from_numpy(region_input(inspector.source(pixels),
                                                                       inspection.region))[None])[1]
    # Statistics come from the full-precision tensor, not the rounded copy.
    np.testing.assert_allclose(inspection.tap("enc1").stats.mean, full["enc1"][0].mean(dim=(1, 2)).numpy(),
                               rtol=1e-5, atol=1e-7)


# --- statistics and sorting ---------------------------------------------------------------------------------
def test_channel_statistics_and_orderings():
    tensor = np.zeros((4, 3, 3), np.float32)
    tensor[0] = 1.0  # high mean, no variance
    tensor[1, 0, 0] = 9.0  # mean 1, large variance
    tensor[2] = np.arange(9).reshape(3, 3)  # mean 4, some variance
    tensor[3] = -2.0
    stats = channel_stats(tensor)
    np.testing.assert_allclose(stats.mean, [1, 1, 4, -2])
    np.testing.assert_allclose(stats.max, [1, 9, 8, -2])
    assert list(sort_channels(stats, "mean")) == [2, 0, 1, 3]  # tie between 0 and 1 keeps channel order
    assert list(sort_channels(stats, "variance")) == [1, 2, 0, 3]
    assert list(sort_channels(stats, "index")) == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="sort key"):
        sort_channels(stats, "brightness")


def test_statistics_ignore_cells_over_the_models_padding():
    tensor = np.ones((1, 4, 4), np.float32)
    tensor[:, 3, :] = 100.0  # a row that only covers padding
    assert channel_stats(tensor, (3, 4)).max[0] == 1.0


# --- alignment with the image --------------------------------------------------------------------------------
def _align_inspection(view=(13, 7, 40, 32)):
    pixels = smooth_image()
    inspector = TapInspector(AlignNet(), _Meta(normalisation=NO_NORMALISATION), device="cpu")
    region = inspector.plan(pixels.shape[:2], view)
    return pixels, inspector.inspect(pixels, region)


def test_identity_tap_upsampled_at_the_region_offset_is_the_image_region():
    pixels, inspection = _align_inspection()
    x, y, w, h = inspection.region.rect
    assert (x, y) != (0, 0) and (w, h) == (40, 32)
    tap = inspection.tap("same")
    assert tap.scale == (1.0, 1.0)
    grid = to_input_grid(tap.channel(0), tap.scale, inspection.input_shape)
    np.testing.assert_allclose(grid, pixels[y:y + h, x:x + w, 0], atol=1e-6)


@pytest.mark.parametrize("tap_name, stride, tolerance", [("half", 2, 0.03), ("quarter", 4, 0.1)])
def test_pooled_tap_upsampled_at_the_region_offset_lines_up_with_the_image(tap_name, stride, tolerance):
    pixels, inspection = _align_inspection()
    x, y, w, h = inspection.region.rect
    tap = inspection.tap(tap_name)
    assert tap.scale == (stride, stride) and tap.shape[1:] == (h // stride, w // stride)
    grid = to_input_grid(tap.channel(0), tap.scale, inspection.input_shape)
    inner = (slice(2, -2), slice(2, -2))

    def error(dy, dx):
        return np.abs(grid - pixels[y + dy:y + h + dy, x + dx:x + w + dx, 0])[inner]

    # Block means blur the pattern a little, so the match is close rather than exact ...
    assert error(0, 0).max() < tolerance
    # ... and placing the map anywhere else, even one pixel off, matches the image worse.
    shifts = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)]
    assert min(shifts, key=lambda s: error(*s).mean()) == (0, 0)


def test_downsampled_region_maps_back_to_image_pixels():
    pixels = smooth_image(192, 256, period=64.0)
    inspector = TapInspector(AlignNet(), _Meta(), device="cpu")
    region = inspector.plan(pixels.shape[:2], (0, 0, 256, 192), max_side=64, mode="downsample")
    inspection = inspector.inspect(pixels, region)
    assert region.step == 4
    probe = probe_pixel(inspection, 101, 57)
    same = next(r for r in probe.rows if r.name == "same")
    row, col = (57 - region.y) // 4, (101 - region.x) // 4
    expected = pixels[region.y + row * 4:region.y + row * 4 + 4, region.x + col * 4:region.x + col * 4 + 4, 0].mean()
    assert same.cell == (row, col)
    assert same.mean == pytest.approx(expected, abs=1e-5)


# --- pixel probe -----------------------------------------------------------------------------------------------
def test_probe_reads_each_tap_at_the_pixels_cell_and_gives_class_probabilities():
    pixels, inspection = _align_inspection()
    x, y = 30, 20
    probe = probe_pixel(inspection, x, y)
    rows = {r.name: r for r in probe.rows}
    assert [r.name for r in probe.rows] == ["same", "half", "quarter", "logits"]
    value = float(pixels[y, x, 0])
    assert rows["same"].mean == pytest.approx(value, abs=1e-6) and rows["same"].max == pytest.approx(value, abs=1e-6)
    ry, rx = y - inspection.region.y, x - inspection.region.x
    assert rows["half"].cell == (ry // 2, rx // 2)
    assert rows["quarter"].cell == (ry // 4, rx // 4)
    half_block = pixels[y - ry % 2:y - ry % 2 + 2, x - rx % 2:x - rx % 2 + 2, 0].mean()
    assert rows["half"].mean == pytest.approx(half_block, abs=1e-5)
    names = [n for n, _ in probe.probabilities]
    probs = [p for _, p in probe.probabilities]
    assert names == ["background", "nucleus"]
    assert probs[1] == pytest.approx(1 / (1 + np.exp(-(20 * value - 10))), abs=1e-5)
    assert sum(probs) == pytest.approx(1.0, abs=1e-6)


def test_probe_outside_the_region_is_refused():
    _, inspection = _align_inspection()
    with pytest.raises(ValueError, match="outside"):
        probe_pixel(inspection, 0, 0)


# --- what to compare ---------------------------------------------------------------------------------------
def _inspect_tiny(name, num_classes=2):
    model = tiny(name, num_classes)
    pixels = (np.random.default_rng(2).random((64, 64, 1)) * 255).astype(np.uint8)
    inspector = TapInspector(model, _Meta(), device="cpu")
    return inspector.inspect(pixels, inspector.plan(pixels.shape[:2]))


def test_unet_levels_show_skip_upsampled_and_merged_side_by_side():
    found = {c.title: c for c in comparisons(_inspect_tiny("unet"))}
    level = found["Skip at 1/2 size: skip2 (from enc2)"]
    assert level.taps[:3] == ("skip2 (from enc2)", "up2 (decoder before concat)", "merge2 (after concat)")
    assert level.mode == "features"
    assert {"Skip at full size: skip1 (from enc1)", "Skip at 1/4 size: skip3 (from enc3)"} <= set(found)


@pytest.mark.parametrize("name, chain", [
    ("fcn32s", ("score_32s", "logits")),
    ("fcn16s", ("score_32s", "score_16s", "logits")),
    ("fcn8s", ("score_32s", "score_16s", "score_8s", "logits")),
])
def test_fcn_score_maps_coarse_to_fine_next_to_the_prediction(name, chain):
    found = comparisons(_inspect_tiny(name, num_classes=3))
    scores = found[0]
    assert scores.taps == chain and scores.mode == "scores"
    if name == "fcn8s":
        pool3 = next(c for c in found if "score_pool3" in c.title)
        assert pool3.taps == ("score_pool3", "upscore_16s (score_16s x2)", "score_8s")


def test_deeplab_shows_aspp_branches_and_the_low_level_skip():
    found = comparisons(_inspect_tiny("deeplabv3plus", num_classes=3))
    skip = next(c for c in found if "low-level" in c.title)
    assert skip.taps[:3] == ("low-level skip", "context upsampled", "merge (after concat)")
    # With 3 classes the 3-channel low-level skip must still be shown as features, not as class scores.
    assert skip.mode == "features"
    context = next(c for c in found if c.title.startswith("Context"))
    assert context.taps[0] == "layer4" and context.taps[-1] == "aspp projection"
    assert sum("aspp branch rate" in t for t in context.taps) == 3


# What each architecture's skips are compared with: the groups the name-based pairing found before the taps
# declared their levels and partners. (U-Net has depth 3 in TINY.)
SKIP_GROUPS = {
    "unet": [("skip3 (from enc3)", "up3 (decoder before concat)", "merge3 (after concat)", "dec3"),
             ("skip2 (from enc2)", "up2 (decoder before concat)", "merge2 (after concat)", "dec2"),
             ("skip1 (from enc1)", "up1 (decoder before concat)", "merge1 (after concat)", "dec1")],
    "fcn32s": [],
    "fcn16s": [("score_pool4", "upscore2 (score_32s x2)", "score_16s")],
    "fcn8s": [("score_pool4", "upscore2 (score_32s x2)", "score_16s"),
              ("score_pool3", "upscore_16s (score_16s x2)", "score_8s")],
    "deconvnet": [(f"unpool{n} (at pool{n} maxima)", f"dec{n}") for n in range(5, 0, -1)],
    "pspnet": [],
    "deeplabv3plus": [("low-level skip", "context upsampled", "merge (after concat)", "decoder")],
}


@pytest.mark.parametrize("name", sorted(TINY))
def test_every_skip_is_compared_with_what_it_meets_and_what_its_level_makes(name):
    found = comparisons(_inspect_tiny(name, num_classes=3))
    skips = [c.taps for c in found if c.title.startswith("Skip at ")]
    assert skips == SKIP_GROUPS[name]


def test_skip_titles_name_the_size_the_skip_works_at():
    titles = [c.title for c in comparisons(_inspect_tiny("fcn8s", num_classes=3))]
    assert "Skip at 1/16 size: score_pool4" in titles and "Skip at 1/8 size: score_pool3" in titles


def test_pspnet_shows_every_pyramid_level():
    context = next(c for c in comparisons(_inspect_tiny("pspnet")) if c.title.startswith("Context"))
    assert context.taps == ("layer4", "ppm bin 1", "ppm bin 2", "ppm bin 3", "ppm bin 6", "ppm concat")


# --- export ---------------------------------------------------------------------------------------------------
def test_npy_export_round_trips(tmp_path):
    inspection = _inspect_tiny("unet")
    path = save_tap(tmp_path / "merge1.npy", inspection, "merge1 (after concat)")
    loaded = np.load(path, allow_pickle=False)
    assert loaded.dtype == np.float32
    np.testing.assert_array_equal(loaded, inspection.tap("merge1 (after concat)").tensor)


def test_tiff_export_keeps_the_maps_and_where_they_lie(tmp_path):
    pixels, inspection = _align_inspection()
    path = save_tap(tmp_path / "half.tif", inspection, "half")
    np.testing.assert_array_equal(tifffile.imread(path), inspection.tap("half").tensor)
    info = insp.read_tap_tiff_info(path)
    assert info["region_xywh"] == list(inspection.region.rect) and info["input_pixels_per_cell"] == [2.0, 2.0]
    assert json.dumps(info)  # plain JSON, readable by other tools


def test_export_refuses_unknown_formats_and_leaves_nothing(tmp_path):
    inspection = _inspect_tiny("unet")
    with pytest.raises(ValueError, match=".npy"):
        save_tap(tmp_path / "enc1.png", inspection, "enc1")
    assert not list(tmp_path.iterdir())
