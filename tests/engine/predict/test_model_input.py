"""The image as the network sees it: channel mapping and whole-image normalisation."""
from __future__ import annotations

import numpy as np
import pytest

from segstudio.engine.predict import DEFAULT_NORMALISATION, prepare_input
from segstudio.engine.predict.model_input import ModelInput


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
    from segstudio.core import imageio as images

    pixels = rng.integers(0, 4000, (40, 50, 2)).astype(np.uint16)
    expected = images.percentile_normalize(pixels, 1.0, 99.8, per_channel=True)
    np.testing.assert_allclose(prepare_input(pixels, 2, DEFAULT_NORMALISATION), np.moveaxis(expected, -1, 0),
                               atol=1e-5)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16])
@pytest.mark.parametrize("in_channels, channels, definition", [
    (1, 1, None), (3, 1, None), (2, 4, None), (2, 3, {"kind": "channels", "channels": [2, 0]}),
])
def test_pixels_scaled_on_the_device_equal_the_hosts(dtype, in_channels, channels, definition):
    """A GPU gets the stored pixels and scales them itself: the network input must be the same numbers."""
    import torch

    from segstudio.engine.predict.tiling import plan_tiles

    info = np.iinfo(dtype)
    pixels = np.random.default_rng(3).integers(max(info.min, -500), min(info.max, 5000), (70, 90, channels),
                                               dtype=dtype)
    source = ModelInput(pixels, in_channels, {"kind": "percentile", "low": 1.0, "high": 99.8}, definition)
    assert source.scales_on_device
    plan = plan_tiles(70, 90, 64, 0.25, 32)  # edge tiles mirror past the image
    for y, x in plan.origins:
        index = plan.source_index(y, x)
        on_host = source.region(*index)
        raw = source.raw_region(*index)
        assert raw.dtype == dtype and raw.shape[0] == (2 if definition else min(channels, in_channels))
        scaled = source.scale_tensor(torch.from_numpy(raw[None]))[0].numpy()
        np.testing.assert_allclose(scaled, on_host, atol=1e-6)


def test_colour_to_grey_and_float_pixels_are_scaled_on_the_host():
    rgb = np.zeros((8, 8, 3), np.uint8)
    assert not ModelInput(rgb, 1, None).scales_on_device
    assert not ModelInput(rgb, 1, None, {"kind": "he"}).scales_on_device
    assert not ModelInput(np.zeros((8, 8, 1), np.float32), 1, None).scales_on_device
