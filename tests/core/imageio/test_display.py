"""Display scaling: dim and multi-channel images become visible, odd values stay well defined."""
import numpy as np
import pytest

from segstudio.core.imageio import percentile_bounds, percentile_normalize, to_display_rgb


def test_dim_16_bit_image_fills_the_display_range(rng):
    dim = rng.integers(100, 401, (64, 80)).astype(np.uint16)
    normalised = percentile_normalize(dim)
    assert normalised.dtype == np.float32 and normalised.shape == dim.shape
    assert normalised.min() == 0.0 and normalised.max() == 1.0
    assert np.percentile(normalised, 50) == pytest.approx(0.5, abs=0.05)
    shown = to_display_rgb(dim)
    assert shown.dtype == np.uint8 and shown.shape == (64, 80, 3)
    assert shown.min() == 0 and shown.max() == 255
    assert np.all(shown[..., 0] == shown[..., 1])  # grey
    # brighter input stays brighter on screen
    order = np.argsort(dim, axis=None)
    assert np.all(np.diff(normalised.ravel()[order]) >= 0)


def test_each_channel_is_stretched_on_its_own(rng):
    pixels = np.stack([rng.integers(100, 400, (30, 30)), rng.integers(10_000, 60_000, (30, 30))], -1)
    pixels = pixels.astype(np.uint16)
    normalised = percentile_normalize(pixels)
    for channel in range(2):
        assert normalised[..., channel].min() == 0.0 and normalised[..., channel].max() == 1.0
    together = percentile_normalize(pixels, per_channel=False)
    assert together[..., 0].max() < 0.05 < 0.9 < together[..., 1].max()


def test_percentiles_of_a_big_image_come_from_a_subsample_that_matches(rng):
    big = rng.gamma(2.0, 500.0, (1500, 1400)).astype(np.uint16)
    lo, hi = percentile_bounds(big, 1.0, 99.8)
    exact_lo, exact_hi = np.percentile(big, [1.0, 99.8])
    assert lo[0] == pytest.approx(exact_lo, rel=0.05)
    assert hi[0] == pytest.approx(exact_hi, rel=0.05)


def test_flat_sparse_and_non_finite_images_stay_well_defined(rng):
    flat = np.full((10, 10), 7, np.uint16)
    assert not percentile_normalize(flat).any()
    sparse = np.zeros((100, 100), np.uint16)
    sparse[5, 5] = sparse[50, 60] = 1000
    normalised = percentile_normalize(sparse)
    assert normalised[5, 5] == 1.0 and normalised[0, 0] == 0.0
    floats = rng.random((20, 20)).astype(np.float32)
    floats[0, :5] = [np.nan, np.inf, -np.inf, np.nan, np.nan]
    normalised = percentile_normalize(floats)
    assert np.isfinite(normalised).all() and normalised.min() >= 0 and normalised.max() <= 1
    all_nan = np.full((4, 4), np.nan, np.float32)
    assert not percentile_normalize(all_nan).any()
    with pytest.raises(ValueError, match="percentiles"):
        percentile_normalize(flat, 50, 10)


def test_display_of_colour_and_multichannel_images(rng):
    photo = rng.integers(0, 255, (9, 11, 3)).astype(np.uint8)
    np.testing.assert_array_equal(to_display_rgb(photo), photo)  # colour pictures are shown as they are
    assert to_display_rgb(photo, stretch=True).max() == 255
    rgba = np.concatenate([photo, np.full((9, 11, 1), 255, np.uint8)], axis=-1)
    np.testing.assert_array_equal(to_display_rgb(rgba), photo)

    five = rng.integers(0, 4000, (9, 11, 5)).astype(np.uint16)
    shown = to_display_rgb(five, channels=[4, 2, 0])
    np.testing.assert_array_equal(shown[..., 0], to_display_rgb(five[..., 4])[..., 0])
    two = to_display_rgb(five, channels=[1, 3])
    np.testing.assert_array_equal(two[..., 0], two[..., 2])  # first channel magenta
    np.testing.assert_array_equal(two[..., 1], to_display_rgb(five[..., 3])[..., 0])  # second green
    with pytest.raises(ValueError, match="choose 1 to 3 channels"):
        to_display_rgb(five, channels=[0, 1, 2, 3])
    with pytest.raises(ValueError, match="choose 1 to 3 channels"):
        to_display_rgb(five, channels=[5])
