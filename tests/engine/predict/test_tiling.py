"""Tiled prediction gives the whole-image answer, for any image size, in bounded memory."""
from __future__ import annotations

import tracemalloc
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from segstudio.engine.predict import Predictor, PredictSettings, plan_tiles
from segstudio.engine.predict.tiling import BandBlender, BlendFactors, band_height
from tests.engine.predict.nets import (
    PROBABILITY_TOLERANCE,
    RECEPTIVE_RADIUS,
    RecordingNet,
    full_context_mask,
    full_pass_probabilities,
    small_net,
    textured_image,
    tiled_probabilities,
)


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


# --- the grid and the blending weights on their own ------------------------------------------------------
@pytest.mark.parametrize("shape, tile, overlap, align", [((300, 257), 64, 0.25, 32), ((97, 61), 48, 0.5, 16),
                                                         ((20, 700), 128, 0.0, 32)])
def test_tiles_are_aligned_cover_the_padded_image_and_blend_weights_sum_to_one(shape, tile, overlap, align):
    plan = plan_tiles(*shape, tile, overlap, align)
    assert plan.padded_h % align == 0 and plan.padded_w % align == 0
    assert plan.padded_h >= shape[0] and plan.padded_w >= shape[1]
    assert all(y % align == 0 for y in plan.rows) and all(x % align == 0 for x in plan.cols)
    covered = np.zeros((plan.padded_h, plan.padded_w), int)
    total = np.zeros((plan.padded_h, plan.padded_w), np.float64)
    factors = BlendFactors(plan, 0.125, torch.device("cpu"))
    for (y, x), weight in zip(plan.origins, factors.for_batch(plan.origins)):
        covered[y : y + plan.tile_h, x : x + plan.tile_w] += 1
        total[y : y + plan.tile_h, x : x + plan.tile_w] += weight[0].numpy()
    assert covered.min() >= 1
    np.testing.assert_allclose(total, 1.0, atol=1e-5)


def test_band_blender_releases_every_image_row_once_top_to_bottom():
    plan = plan_tiles(150, 70, 32, 0.25, 16)
    batches = [[origin] for origin in plan.origins]
    blender = BandBlender(plan, band_height(plan, batches))
    released = []
    for (y, x), in batches:
        released += [(row, slab.shape[1]) for row, slab in blender.release_until(y, slab_rows=7)]
        blender.add(y, x, np.ones((2, plan.tile_h, plan.tile_w), np.float32))
    released += [(row, slab.shape[1]) for row, slab in blender.release_until(plan.padded_h, slab_rows=7)]
    rows = [r for row, n in released for r in range(row, row + n)]
    assert rows == list(range(150))
