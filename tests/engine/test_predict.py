"""Tiled prediction: same answer as one whole-image pass, any image size, bounded memory, cancel, OOM fallback.

The models here are tiny convolution stacks defined in this file, so the tests exercise the engine alone.
"""
from __future__ import annotations

import math

import tracemalloc
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from segstudio.engine.predict import (
    DEFAULT_NORMALISATION,
    PredictionCancelled,
    Predictor,
    PredictSettings,
    plan_tiles,
    prepare_input,
)

# Two 3x3 convolutions: a pixel's output depends on pixels up to 2 away, so a pixel at least this far
# inside a tile sees the same context as in a whole-image pass.
RECEPTIVE_RADIUS = 2
# Blending is a weighted average of tile outputs that are bitwise the same computation; what is left is
# float32 rounding of the sums.
PROBABILITY_TOLERANCE = 1e-5


def small_net(in_channels: int = 1, classes: int = 3, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(in_channels, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, classes, 1),
    )
    with torch.no_grad():  # sharpen the outputs so labels and confidences vary across the image
        net[-1].weight.mul_(4.0)
    return net.eval()


def constant_net(logits: list[float]) -> nn.Module:
    """Predicts the same logits at every pixel (weights zero, bias = logits)."""
    net = nn.Conv2d(1, len(logits), 1)
    with torch.no_grad():
        net.weight.zero_()
        net.bias.copy_(torch.tensor(logits))
    return net


def textured_image(height: int, width: int, rng: np.random.Generator, channels: int = 1) -> np.ndarray:
    """uint16 texture whose left half is ten times brighter than its right half.

    Percentiles taken per tile would make both halves look alike; only whole-image levels reproduce the
    whole-image pass.
    """
    yy, xx = np.mgrid[0:height, 0:width]
    base = 800 + 300 * np.sin(yy / 7.0) * np.cos(xx / 5.0)
    base = base[..., None] + rng.normal(0, 120, (height, width, channels))
    base[:, : width // 2] *= 10
    return np.clip(base, 0, 65535).astype(np.uint16)


def full_pass_probabilities(net: nn.Module, image: np.ndarray, in_channels: int = 1) -> np.ndarray:
    x = torch.from_numpy(prepare_input(image, in_channels, DEFAULT_NORMALISATION))[None]
    with torch.no_grad():
        return torch.softmax(net(x), dim=1)[0].numpy()


def tiled_probabilities(predictor: Predictor, image: np.ndarray, settings: PredictSettings) -> np.ndarray:
    bands = list(predictor.iter_probabilities(image, settings))
    rows = [row for row, _ in bands]
    assert rows == sorted(rows) and rows[0] == 0
    return np.concatenate([probs for _, probs in bands], axis=1)


def full_context_mask(height: int, width: int, settings: PredictSettings, radius: int) -> np.ndarray:
    """Pixels that every tile covering them sees with full context, away from the image border."""
    plan = plan_tiles(height, width, settings.tile, settings.overlap, settings.align)
    near_edge = np.zeros((plan.padded_h, plan.padded_w), bool)
    edge_band = np.ones((plan.tile_h, plan.tile_w), bool)
    edge_band[radius:-radius, radius:-radius] = False
    for y, x in plan.origins:
        near_edge[y : y + plan.tile_h, x : x + plan.tile_w] |= edge_band
    good = ~near_edge[:height, :width]
    good[:radius] = good[-radius:] = False
    good[:, :radius] = good[:, -radius:] = False
    return good


class RecordingNet(nn.Module):
    """Wraps a net and records the device and shape of every batch it is given."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net
        self.calls: list[tuple[str, tuple[int, ...]]] = []

    def forward(self, x):
        self.calls.append((x.device.type, tuple(x.shape)))
        return self.net(x)


class RunsOutOfMemory(nn.Module):
    """Raises the error a GPU would when a batch or tile is above a limit, or on a given device type.

    The wrapped net is hidden from nn.Module's registry so that moving the wrapper to another device
    (as the CPU fallback does) leaves the real weights on the CPU where they can run.
    """

    def __init__(self, net, *, max_batch=None, max_side=None, fails_on=None, error=torch.cuda.OutOfMemoryError,
                 message="CUDA out of memory. Tried to allocate 2.00 GiB"):
        super().__init__()
        object.__setattr__(self, "inner", net)
        self.config = {"in_channels": 1}
        self.max_batch, self.max_side, self.fails_on = max_batch, max_side, fails_on
        self.error, self.message = error, message
        self.calls: list[tuple[str, tuple[int, ...]]] = []

    def forward(self, x):
        self.calls.append((x.device.type, tuple(x.shape)))
        too_big = (self.max_batch is not None and x.shape[0] > self.max_batch) or (
            self.max_side is not None and max(x.shape[-2:]) > self.max_side
        )
        if too_big or x.device.type == self.fails_on:
            raise self.error(self.message)
        return self.inner(x)


# --- tiled vs whole image --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "tile, overlap, align",
    [(32, 0.25, 32), (64, 0.5, 32), (64, 0.0, 32), (48, 0.25, 16), (37, 0.3, 1)],
)
def test_tiled_probabilities_match_whole_image_pass_where_tiles_see_full_context(rng, tile, overlap, align):
    image = textured_image(150, 130, rng)
    net = small_net()
    settings = PredictSettings(tile=tile, overlap=overlap, batch=3, align=align)
    assert plan_tiles(150, 130, tile, overlap, align).count > 4

    tiled = tiled_probabilities(Predictor(net, device="cpu"), image, settings)
    reference = full_pass_probabilities(net, image)

    assert tiled.shape == reference.shape == (3, 150, 130)
    good = full_context_mask(150, 130, settings, RECEPTIVE_RADIUS)
    assert good.mean() > 0.3
    assert np.abs(tiled - reference)[:, good].max() < PROBABILITY_TOLERANCE
    # Everywhere else the blend is still a proper probability distribution.
    np.testing.assert_allclose(tiled.sum(axis=0), 1.0, atol=1e-5)


def test_labels_and_confidence_match_whole_image_pass(rng):
    image = textured_image(150, 130, rng)
    net = small_net()
    settings = PredictSettings(tile=64, overlap=0.25, batch=2)
    result = Predictor(net, device="cpu").predict(image, settings)
    reference = full_pass_probabilities(net, image)
    good = full_context_mask(150, 130, settings, RECEPTIVE_RADIUS)

    ordered = np.sort(reference, axis=0)
    clear_winner = good & (ordered[-1] - ordered[-2] > 10 * PROBABILITY_TOLERANCE)
    assert np.array_equal(result.labels[clear_winner], reference.argmax(axis=0)[clear_winner])
    expected = reference.max(axis=0).astype(np.float16)
    # Within one float16 step of the reference (rounding of a float32 that agrees to 1e-5).
    step = np.spacing(expected[good]).astype(np.float32)
    assert np.all(np.abs(result.confidence[good].astype(np.float32) - expected[good]) <= step)
    assert len(np.unique(result.labels)) > 1


@pytest.mark.parametrize("shape", [(97, 61), (300, 257), (1, 1), (5, 200), (200, 3)])
@pytest.mark.parametrize("tile", [64, 512])
def test_any_image_size_comes_back_at_its_exact_size(rng, shape, tile):
    image = textured_image(*shape, rng)
    result = Predictor(small_net(), device="cpu").predict(image, PredictSettings(tile=tile))
    assert result.labels.shape == shape and result.labels.dtype == np.uint8
    assert result.confidence.shape == shape and result.confidence.dtype == np.float16
    assert result.uncertainty.shape == shape and result.uncertainty.dtype == np.float16
    assert result.labels.max() < 3
    assert np.all(result.confidence >= np.float16(1 / 3 - 1e-3)) and np.all(result.confidence <= 1)
    assert np.all(result.uncertainty >= 0) and np.all(result.uncertainty <= 1)


def test_image_that_fits_one_tile_runs_as_one_padded_pass(rng):
    image = textured_image(97, 61, rng)
    net = RecordingNet(small_net())
    calls = []
    predictor = Predictor(net, device="cpu")
    probs = tiled_probabilities(predictor, image, PredictSettings(tile=512))
    result = predictor.predict(image, PredictSettings(tile=512), progress=lambda *a: calls.append(a))

    assert calls == [(1, 1)] and result.tiles == 1
    # Padded up to the network stride (32), not to the tile size.
    assert net.calls[-1] == ("cpu", (1, 1, 128, 64))
    inner = (slice(None), slice(RECEPTIVE_RADIUS, -RECEPTIVE_RADIUS), slice(RECEPTIVE_RADIUS, -RECEPTIVE_RADIUS))
    np.testing.assert_allclose(probs[inner], full_pass_probabilities(net.net, image)[inner], atol=1e-6)


def test_batching_gives_the_same_result_as_one_tile_at_a_time(rng):
    image = textured_image(140, 120, rng)
    predictor = Predictor(small_net(), device="cpu")
    one = tiled_probabilities(predictor, image, PredictSettings(tile=32, batch=1))
    for batch in (4, 7, 100):
        batched = tiled_probabilities(predictor, image, PredictSettings(tile=32, batch=batch))
        np.testing.assert_allclose(batched, one, atol=1e-6)


def test_prediction_memory_does_not_grow_with_image_height(rng):
    """Only a band of rows is kept as float sums, so a taller image needs hardly more working memory.

    (Percentile levels are estimated on a subsample of at most about a million pixels: a fixed cost,
    left out here with normalisation "none" so that only the tiling is measured.)
    """
    meta = SimpleNamespace(in_channels=1, normalisation={"kind": "none"}, classes=[])
    predictor = Predictor(small_net(), meta, device="cpu")
    settings = PredictSettings(tile=32, overlap=0.25, batch=4, align=8)

    def peak_bytes(height: int) -> int:
        image = textured_image(height, 96, rng)
        tracemalloc.start()
        try:
            for _ in predictor.iter_probabilities(image, settings):
                pass
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    short, tall = peak_bytes(256), peak_bytes(8192)
    whole_image_accumulator = 3 * 8192 * 96 * 4  # float32 sums for every class over the whole image
    assert tall - short < whole_image_accumulator / 10


# --- progress and cancel -------------------------------------------------------------------------
def test_default_batch_is_one_tile_on_the_cpu_and_four_on_an_accelerator(rng):
    image = textured_image(150, 130, rng)
    on_cpu = RecordingNet(small_net())
    Predictor(on_cpu, device="cpu").predict(image, PredictSettings(tile=32))
    assert {shape[0] for _, shape in on_cpu.calls} == {1}

    chosen = RecordingNet(small_net())
    Predictor(chosen, device="cpu").predict(image, PredictSettings(tile=32, batch=3))
    assert max(shape[0] for _, shape in chosen.calls) == 3

    # "meta" stands in for an accelerator; it fails at any size, so the first try shows the batch it used.
    flaky = RunsOutOfMemory(small_net(), fails_on="meta")
    Predictor(flaky, device=torch.device("meta")).predict(image, PredictSettings(tile=32))
    first_device, first_shape = flaky.calls[0]
    assert first_device == "meta" and first_shape[0] == 4
    assert {shape[0] for device, shape in flaky.calls if device == "cpu"} == {1}  # back to the CPU's default


def test_progress_is_reported_after_every_batch(rng):
    image = textured_image(150, 130, rng)
    calls = []
    settings = PredictSettings(tile=32, batch=4)
    total = plan_tiles(150, 130, 32, 0.25, 32).count
    result = Predictor(small_net(), device="cpu").predict(image, settings, progress=lambda *a: calls.append(a))
    expected_done = list(range(4, total, 4)) + [total]
    assert calls == [(done, total) for done in expected_done]
    assert result.tiles == total


def test_cancel_stops_before_the_next_batch(rng):
    image = textured_image(150, 130, rng)
    net = RecordingNet(small_net())
    polls = []

    def cancel():
        polls.append(1)
        return len(polls) >= 3

    with pytest.raises(PredictionCancelled):
        Predictor(net, device="cpu").predict(image, PredictSettings(tile=32, batch=2), cancel=cancel)
    assert len(net.calls) == 2


# --- running out of memory -----------------------------------------------------------------------
def test_out_of_memory_retries_with_smaller_batches(rng):
    image = textured_image(150, 130, rng)
    net = small_net()
    flaky = RunsOutOfMemory(net, max_batch=2)
    result = Predictor(flaky, device="cpu").predict(image, PredictSettings(tile=32, batch=8))
    expected = Predictor(net, device="cpu").predict(image, PredictSettings(tile=32, batch=2))

    assert len(result.notes) == 2
    assert "batches of 8" in result.notes[0] and "batches of 4" in result.notes[0]
    assert "batches of 2" in result.notes[1]
    assert np.array_equal(result.labels, expected.labels)
    np.testing.assert_allclose(result.confidence, expected.confidence, atol=1e-3)


def test_out_of_memory_with_batch_one_retries_with_smaller_tiles(rng):
    image = textured_image(150, 130, rng)
    net = small_net()
    flaky = RunsOutOfMemory(net, max_side=64)
    result = Predictor(flaky, device="cpu").predict(image, PredictSettings(tile=128, batch=2))
    expected = Predictor(net, device="cpu").predict(image, PredictSettings(tile=64, batch=1))

    assert any("64 px tiles in batches of 1" in note for note in result.notes)
    assert flaky.calls[-1][1] == (1, 1, 64, 64)
    assert np.array_equal(result.labels, expected.labels)


def test_out_of_memory_on_an_accelerator_falls_back_to_the_cpu(rng):
    image = textured_image(150, 130, rng)
    net = small_net()
    # "meta" stands in for an accelerator: the wrapper fails there as a full GPU would, at any size.
    flaky = RunsOutOfMemory(net, fails_on="meta")
    predictor = Predictor(flaky, device=torch.device("meta"))
    result = predictor.predict(image, PredictSettings(tile=128, batch=4))
    expected = Predictor(net, device="cpu").predict(image, PredictSettings(tile=128, batch=4))

    assert result.device == "cpu"
    assert "on cpu" in result.notes[-1]
    tried = [(device, shape[0], shape[-1]) for device, shape in flaky.calls if device == "meta"]
    assert [(b, side) for _, b, side in tried] == [(4, 128), (2, 128), (1, 128), (1, 64)]
    assert np.array_equal(result.labels, expected.labels)
    assert predictor.device == torch.device("meta")  # later calls try the accelerator again


def test_out_of_memory_everywhere_is_raised_not_swallowed(rng):
    image = textured_image(150, 130, rng)
    flaky = RunsOutOfMemory(small_net(), max_batch=0)
    with pytest.raises(torch.cuda.OutOfMemoryError):
        Predictor(flaky, device="cpu").predict(image, PredictSettings(tile=128, batch=2))
    assert [shape[0] for _, shape in flaky.calls] == [2, 1, 1]


def test_out_of_memory_runtime_error_from_other_backends_is_recognised(rng):
    image = textured_image(100, 100, rng)
    flaky = RunsOutOfMemory(small_net(), max_batch=1, error=RuntimeError,
                            message="MPS backend out of memory (MPS allocated: 8.00 GB)")
    result = Predictor(flaky, device="cpu").predict(image, PredictSettings(tile=32, batch=2))
    assert result.labels.shape == (100, 100) and len(result.notes) == 1


def test_other_errors_are_not_retried(rng):
    image = textured_image(100, 100, rng)
    flaky = RunsOutOfMemory(small_net(), max_batch=0, error=RuntimeError, message="expected input channels")
    with pytest.raises(RuntimeError, match="expected input channels"):
        Predictor(flaky, device="cpu").predict(image, PredictSettings(tile=32, batch=2))
    assert len(flaky.calls) == 1


# --- outputs ---------------------------------------------------------------------------------------
def test_uncertainty_is_normalised_entropy(rng):
    image = textured_image(40, 40, rng)
    unsure = Predictor(constant_net([0.0, 0.0, 0.0]), device="cpu").predict(image)
    assert np.allclose(unsure.uncertainty.astype(np.float32), 1.0, atol=1e-3)
    assert np.allclose(unsure.confidence.astype(np.float32), 1 / 3, atol=1e-3)

    sure = Predictor(constant_net([0.0, 12.0, 0.0]), device="cpu").predict(image)
    assert np.all(sure.labels == 1)
    assert sure.uncertainty.max() < 0.01 and sure.confidence.min() > 0.99


@pytest.mark.parametrize("classes", [1, 2, 3, 7, 300])
def test_summary_matches_argmax_max_and_entropy_including_ties(classes, rng):
    from segstudio.engine.predict import _summarise_into

    probs = rng.random((classes, 37, 53)).astype(np.float32)
    probs[:, :5] = 1.0  # exact ties across all classes: the lowest class wins, as with argmax
    if classes > 2:
        probs[2, 5:9] = probs[1, 5:9]  # ties between two classes that beat the rest
        probs[1:3, 5:9] += 2.0
    probs /= probs.sum(axis=0, keepdims=True)
    dtype = np.uint8 if classes <= 256 else np.uint16
    labels = np.zeros((37, 53), dtype)
    confidence = np.zeros((37, 53), np.float16)
    uncertainty = np.zeros((37, 53), np.float16)
    _summarise_into(probs, None, labels, confidence, uncertainty)

    assert np.array_equal(labels, probs.argmax(axis=0))
    assert np.allclose(confidence.astype(np.float32), probs.max(axis=0), rtol=1e-3)
    entropy = -(probs * np.log(np.maximum(probs, 1e-12))).sum(axis=0)
    expected = np.clip(entropy / math.log(classes), 0, 1) if classes > 1 else np.zeros_like(entropy)
    assert np.allclose(uncertainty.astype(np.float32), expected, atol=2e-3)

    ids = np.arange(classes, dtype=np.int64) * 3 % 250 + 1 if classes <= 256 else np.arange(classes) + 500
    lut = ids.astype(dtype)
    mapped = np.zeros((37, 53), dtype)
    _summarise_into(probs, lut, mapped, confidence, uncertainty)
    assert np.array_equal(mapped, ids[probs.argmax(axis=0)])


def test_more_than_255_classes_gives_uint16_labels(rng):
    logits = [0.0] * 300
    logits[280] = 5.0
    result = Predictor(constant_net(logits), device="cpu").predict(textured_image(20, 30, rng))
    assert result.labels.dtype == np.uint16 and np.all(result.labels == 280)


def test_output_channels_map_to_the_class_ids_in_the_metadata(rng):
    meta = SimpleNamespace(in_channels=1, normalisation={"kind": "none"},
                           classes=[{"id": 0, "name": "background"}, {"id": 5, "name": "a"}, {"id": 9, "name": "b"}])
    result = Predictor(constant_net([0.0, 0.0, 6.0]), meta, device="cpu").predict(textured_image(20, 30, rng))
    assert result.labels.dtype == np.uint8 and np.all(result.labels == 9)


def test_settings_are_checked():
    for bad in (PredictSettings(tile=0), PredictSettings(overlap=1.0), PredictSettings(batch=-1)):
        with pytest.raises(ValueError):
            bad.validate()


# --- input preparation -----------------------------------------------------------------------------
def test_grey_is_repeated_for_a_colour_model(rng):
    grey = rng.integers(0, 255, (20, 30, 1)).astype(np.uint8)
    out = prepare_input(grey, 3, DEFAULT_NORMALISATION)
    assert out.shape == (3, 20, 30) and out.dtype == np.float32
    assert np.array_equal(out[0], out[1]) and np.array_equal(out[0], out[2])
    assert out.min() == 0.0 and out.max() == 1.0


def test_colour_becomes_grey_by_channel_mean_for_a_one_channel_model(rng):
    rgb = rng.integers(0, 255, (20, 30, 3)).astype(np.uint8)
    out = prepare_input(rgb, 1, {"kind": "none"})
    np.testing.assert_allclose(out[0], rgb.astype(np.float32).mean(axis=-1), rtol=1e-6)
    rgba = np.concatenate([rgb, np.full((20, 30, 1), 255, np.uint8)], axis=-1)
    np.testing.assert_array_equal(prepare_input(rgba, 1, {"kind": "none"}), out)


def test_extra_channels_beyond_the_model_are_dropped(rng):
    stack = rng.normal(size=(10, 12, 5)).astype(np.float64)
    out = prepare_input(stack, 2, {"kind": "none"})
    np.testing.assert_allclose(out, np.moveaxis(stack[..., :2], -1, 0).astype(np.float32))


def test_too_few_channels_is_a_clear_error(rng):
    with pytest.raises(ValueError, match="expects 3 channels but the image has 2"):
        prepare_input(np.zeros((4, 4, 2), np.uint8), 3, {"kind": "none"})


def test_percentile_normalisation_is_per_channel_over_the_whole_image(rng):
    pixels = np.stack([rng.normal(100, 10, (64, 64)), rng.normal(5000, 700, (64, 64))], axis=-1).astype(np.float32)
    out = prepare_input(pixels, 2, {"kind": "percentile", "low": 2.0, "high": 98.0})
    for c in range(2):
        lo, hi = np.percentile(pixels[..., c], [2.0, 98.0])
        expected = np.clip((pixels[..., c] - lo) / (hi - lo), 0, 1)
        np.testing.assert_allclose(out[c], expected, atol=1e-5)
        assert abs((out[c] == 0).mean() - 0.02) < 0.005 and abs((out[c] == 1).mean() - 0.02) < 0.005


def test_nan_pixels_do_not_spread(rng):
    pixels = rng.normal(100, 10, (32, 32, 1)).astype(np.float32)
    pixels[:4] = np.nan
    out = prepare_input(pixels, 1, DEFAULT_NORMALISATION)
    assert np.isfinite(out).all() and out[0, 10:].max() == 1.0


def test_unknown_normalisation_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown normalisation kind 'zscore'"):
        prepare_input(np.zeros((4, 4, 1), np.uint8), 1, {"kind": "zscore"})


def test_normalisation_agrees_with_core_images(rng):
    images = pytest.importorskip("segstudio.core.imageio", reason="segstudio.core.imageio not available")
    pixels = rng.integers(0, 4000, (40, 50, 2)).astype(np.uint16)
    expected = images.percentile_normalize(pixels, 1.0, 99.8, per_channel=True)
    np.testing.assert_allclose(prepare_input(pixels, 2, DEFAULT_NORMALISATION), np.moveaxis(expected, -1, 0),
                               atol=1e-5)


class RingNet(nn.Module):
    """Foreground is a ring with a 2x2 pinhole in the middle and a lone speck: what networks leave."""

    def forward(self, x):
        n, _, h, w = x.shape
        fg = torch.zeros((n, 1, h, w))
        fg[:, :, 8:20, 8:20] = 1.0
        fg[:, :, 13:15, 13:15] = 0.0
        fg[:, :, 2, 28] = 1.0
        return torch.cat([1.0 - fg, fg], dim=1) * 10.0


def test_the_models_postprocess_rules_clean_the_labels(rng):
    from types import SimpleNamespace

    image = rng.random((32, 32, 1)).astype(np.float32)
    plain = SimpleNamespace(in_channels=1, normalisation={"kind": "none"}, classes=[])
    raw = Predictor(RingNet(), plain, device="cpu").predict(image, PredictSettings(tile=32)).labels
    assert raw[13, 13] == 0 and raw[2, 28] == 1
    meta = SimpleNamespace(**vars(plain), postprocess={"fill_holes_px": 16, "min_object_px": 3})
    cleaned = Predictor(RingNet(), meta, device="cpu").predict(image, PredictSettings(tile=32)).labels
    assert cleaned[13, 13] == 1 and cleaned[2, 28] == 0
    np.testing.assert_array_equal(cleaned[8:20, 8:20], 1)


# --- blending where the network runs (GPUs) ------------------------------------------------------------
@pytest.mark.parametrize("band_limit", [None, 0])
def test_device_side_blending_gives_the_host_result(rng, monkeypatch, band_limit):
    """The GPU path (band of sums and summaries on the device) run on CPU tensors, against the host path.

    With a zero band limit the first batch has already run on the device when the engine learns that the
    band will not fit, and it must carry on on the host.
    """
    import segstudio.engine.predict as engine

    image = textured_image(203, 171, rng)
    meta = SimpleNamespace(in_channels=1, normalisation={"kind": "percentile", "low": 1.0, "high": 99.8},
                           classes=[{"id": 0, "name": "background"}, {"id": 4, "name": "a"},
                                    {"id": 7, "name": "b"}])
    net = small_net(classes=3)
    settings = PredictSettings(tile=64, overlap=0.3, batch=3)
    host = Predictor(net, meta, device="cpu").predict(image, settings)
    host_bands = list(Predictor(net, meta, device="cpu").iter_probabilities(image, settings))

    monkeypatch.setattr(engine, "_blend_on_device", lambda device: True)
    if band_limit is not None:
        monkeypatch.setattr(engine, "_DEVICE_BAND_BYTES", band_limit)
    summaries = []
    summarise = engine._summarise_tensor
    monkeypatch.setattr(engine, "_summarise_tensor", lambda *a: summaries.append(1) or summarise(*a))
    device = Predictor(net, meta, device="cpu").predict(image, settings)
    assert bool(summaries) == (band_limit is None)  # which path ran
    device_bands = list(Predictor(net, meta, device="cpu").iter_probabilities(image, settings))

    assert device.labels.dtype == host.labels.dtype == np.uint8
    assert set(np.unique(device.labels)) <= {0, 4, 7}
    # Probabilities agree to float32 rounding; a pixel whose top two classes tie that closely may differ.
    assert (device.labels == host.labels).mean() > 0.999
    np.testing.assert_allclose(device.confidence.astype(np.float32), host.confidence.astype(np.float32),
                               atol=1e-3)
    np.testing.assert_allclose(device.uncertainty.astype(np.float32), host.uncertainty.astype(np.float32),
                               atol=2e-3)
    stacked = lambda bands: np.concatenate([probs for _, probs in bands], axis=1)  # noqa: E731
    assert [row for row, _ in device_bands][0] == 0
    np.testing.assert_allclose(stacked(device_bands), stacked(host_bands), atol=1e-5)
    assert stacked(device_bands).shape == (3, 203, 171)


def test_device_summary_matches_the_host_summary(rng):
    from segstudio.engine.predict import _summarise_into, _summarise_tensor

    probs = rng.random((4, 30, 41)).astype(np.float32)
    probs[:, :3] = 0.25  # ties
    probs[0, 5:7] = 0.0  # zero probabilities: entropy terms of 0
    probs /= probs.sum(axis=0, keepdims=True)
    labels = np.zeros((30, 41), np.uint8)
    confidence = np.zeros((30, 41), np.float16)
    uncertainty = np.zeros((30, 41), np.float16)
    _summarise_into(probs, None, labels, confidence, uncertainty)
    device_labels, device_confidence, device_uncertainty = _summarise_tensor(torch.from_numpy(probs), None)
    assert np.array_equal(device_labels.numpy(), labels)
    np.testing.assert_allclose(device_confidence.float().numpy(), confidence.astype(np.float32), atol=1e-3)
    np.testing.assert_allclose(device_uncertainty.float().numpy(), uncertainty.astype(np.float32), atol=1e-3)


def test_device_side_blending_with_more_than_255_classes(rng, monkeypatch):
    import segstudio.engine.predict as engine

    monkeypatch.setattr(engine, "_blend_on_device", lambda device: True)
    logits = [0.0] * 300
    logits[280] = 5.0
    result = Predictor(constant_net(logits), device="cpu").predict(textured_image(20, 30, rng))
    assert result.labels.dtype == np.uint16 and np.all(result.labels == 280)
    meta = SimpleNamespace(in_channels=1, normalisation={"kind": "none"},
                           classes=[{"id": 1000 + i, "name": f"c{i}"} for i in range(300)])
    named = Predictor(constant_net(logits), meta, device="cpu").predict(textured_image(20, 30, rng))
    assert named.labels.dtype == np.uint16 and np.all(named.labels == 1280)
