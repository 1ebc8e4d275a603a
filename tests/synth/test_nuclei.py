"""The synthetic nuclei generator: reproducible, exact ground truth, and as hard as real stains."""
import dataclasses

import numpy as np
import pytest

from segstudio.synth import nuclei

# A scene where almost nothing disturbs a global threshold: nuclei of one brightness on a flat background.
EASY = nuclei.SceneParams(brightness_decades=0.1, background=0.1, illumination=0.0, haze=0.0, photons=3000.0,
                          debris=0.0, defocus=False, cytoplasm=0.0, texture=0.1, spots=0.0, mitotic_fraction=0.0,
                          psf_sigma=0.8, radius=8.0)
# What makes real nuclear stains hard: 1.5 decades of brightness, uneven light, haze, few photons.
HARD = nuclei.SceneParams(brightness_decades=1.5, background=0.8, illumination=0.5, haze=0.5, photons=150.0,
                          cytoplasm=0.05, mitotic_fraction=0.04, coverage=0.3, cluster_fraction=0.7)


def _per_nucleus_means(image, instances):
    ids = np.arange(1, int(instances.max()) + 1)
    sums = np.bincount(instances.ravel(), weights=image.ravel().astype(np.float64), minlength=ids.size + 1)
    counts = np.bincount(instances.ravel(), minlength=ids.size + 1)
    return sums[1:] / counts[1:]


def test_same_seed_same_image_and_different_seed_different_image():
    a = nuclei.generate_nuclei_image(7, height=96, width=80)
    b = nuclei.generate_nuclei_image(7, height=96, width=80)
    c = nuclei.generate_nuclei_image(8, height=96, width=80)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], c[0])
    assert a[0].shape == a[1].shape == a[2].shape == (96, 80)


def test_generator_object_and_seed_give_the_same_result():
    from_seed = nuclei.generate_nuclei_image(3, height=64, width=64)
    from_rng = nuclei.generate_nuclei_image(np.random.default_rng(3), height=64, width=64)
    np.testing.assert_array_equal(from_seed[0], from_rng[0])


@pytest.mark.parametrize("bit_depth,dtype", [(8, np.uint8), (16, np.uint16)])
def test_bit_depths(bit_depth, dtype):
    image, mask, instances = nuclei.generate_nuclei_image(11, height=64, width=64, bit_depth=bit_depth, params=EASY)
    assert image.dtype == dtype
    assert mask.dtype == np.uint8 and instances.dtype == np.int32
    if bit_depth == 16:
        assert image.max() > 255  # really uses the 16-bit range, not 8-bit values in a wider type


def test_unsupported_bit_depth_is_refused():
    with pytest.raises(ValueError, match="bit_depth"):
        nuclei.generate_nuclei_image(0, bit_depth=12)


@pytest.mark.parametrize("seed", range(6))
def test_masks_are_nontrivial_and_consistent_with_instances(seed):
    image, mask, instances = nuclei.generate_nuclei_image(seed, height=128, width=128)
    assert set(np.unique(mask)) <= {0, 1}
    assert 0.01 < mask.mean() < 0.8
    np.testing.assert_array_equal(mask, (instances > 0).astype(np.uint8))
    n = int(instances.max())
    assert n >= 1
    assert set(np.unique(instances)) == set(range(n + 1))  # numbered 1..N without gaps


def test_clustered_scenes_have_touching_nuclei_with_one_label_per_pixel():
    params = dataclasses.replace(EASY, coverage=0.4, cluster_fraction=0.9, touching=0.75)
    _, _, instances = nuclei.generate_nuclei_image(5, height=128, width=128, params=params)
    right = (instances[:, :-1] > 0) & (instances[:, 1:] > 0) & (instances[:, :-1] != instances[:, 1:])
    down = (instances[:-1] > 0) & (instances[1:] > 0) & (instances[:-1] != instances[1:])
    assert right.sum() + down.sum() > 20  # shared borders between different nuclei


def test_dim_and_bright_nuclei_coexist_and_the_spread_follows_the_parameter():
    def spread(decades):
        ratios = []
        for seed in range(3):
            params = dataclasses.replace(EASY, brightness_decades=decades)
            image, mask, instances = nuclei.generate_nuclei_image(seed, height=128, width=128, params=params)
            means = _per_nucleus_means(image, instances) - np.median(image[mask == 0])
            ratios.append(np.percentile(means, 90) / max(np.percentile(means, 10), 1e-6))
        return float(np.median(ratios))

    assert spread(1.5) > 5.0  # bright nuclei at least 5x the dim ones in the same image
    assert spread(0.1) < 2.0


def test_nucleus_size_follows_the_radius_parameter():
    def median_area(radius):
        _, _, instances = nuclei.generate_nuclei_image(1, height=128, width=128,
                                                       params=dataclasses.replace(EASY, radius=radius))
        return float(np.median(np.bincount(instances.ravel())[1:]))

    small, large = median_area(5.0), median_area(20.0)
    assert 0.5 * np.pi * 5**2 < small < 1.5 * np.pi * 5**2
    assert large > 8 * small


def test_default_ranges_vary_magnification_across_images():
    radii = [nuclei.sample_params(seed).radius for seed in range(40)]
    assert min(radii) < 7 and max(radii) > 20
    assert all(4.0 <= r <= 30.0 for r in radii)


def test_image_follows_the_mask_but_is_not_trivially_thresholdable():
    easy = [nuclei.iou(nuclei.otsu_baseline(img), mask)
            for img, mask, _ in (nuclei.generate_nuclei_image(s, height=128, width=128, params=EASY)
                                 for s in range(3))]
    hard = [nuclei.iou(nuclei.otsu_baseline(img), mask)
            for img, mask, _ in (nuclei.generate_nuclei_image(s, height=128, width=128, params=HARD)
                                 for s in range(6))]
    assert min(easy) > 0.85  # the signal really is where the mask says
    assert np.mean(hard) < 0.6  # but a global threshold fails on realistic scenes


def test_light_outside_nuclei_is_not_in_the_mask():
    # Strong haze and debris raise the background well above the camera offset, yet the mask stays the nuclei.
    params = dataclasses.replace(EASY, haze=1.0, debris=40.0, coverage=0.1)
    image, mask, _ = nuclei.generate_nuclei_image(2, height=128, width=128, params=params)
    quiet = dataclasses.replace(params, haze=0.0, debris=0.0)
    image_q, mask_q, _ = nuclei.generate_nuclei_image(2, height=128, width=128, params=quiet)
    np.testing.assert_array_equal(mask, mask_q)  # same nuclei: haze and debris do not change the truth
    bg = mask == 0
    assert image[bg].astype(float).max() > image_q[bg].astype(float).max() * 1.5


def test_otsu_baseline_separates_two_levels():
    img = np.full((20, 20), 100, dtype=np.uint16)
    img[5:15, 5:15] = 1000
    mask = nuclei.otsu_baseline(img, smooth_sigma=0.0)
    assert mask.dtype == np.uint8
    expected = np.zeros((20, 20), dtype=np.uint8)
    expected[5:15, 5:15] = 1
    np.testing.assert_array_equal(mask, expected)
    assert nuclei.otsu_baseline(np.zeros((4, 4), np.uint8)).sum() == 0


def test_iou_and_dice():
    pred = np.array([[1, 1, 0, 0]])
    target = np.array([[1, 1, 1, 0]])
    assert nuclei.iou(pred, target) == pytest.approx(2 / 3)
    assert nuclei.dice(pred, target) == pytest.approx(4 / 5)
    empty = np.zeros((2, 2))
    assert nuclei.iou(empty, empty) == 1.0 and nuclei.dice(empty, empty) == 1.0
    assert nuclei.iou(pred, 1 - target) == 0.0
    with pytest.raises(ValueError):
        nuclei.iou(pred, np.zeros((2, 2)))


def test_make_training_set_writes_a_dataset_with_the_generated_masks(tmp_path):
    from segstudio.core.dataset import load_entry, load_manifest

    out = nuclei.make_training_set(tmp_path / "train", 4, seed=9, size=48)
    manifest = load_manifest(out)
    assert len(manifest["entries"]) == 4
    expected = {i: (img, mask) for i, img, mask in nuclei.iter_training_images(4, seed=9, size=48)}
    for entry in manifest["entries"]:
        index = int(entry["source"].rsplit("/", 1)[1])
        pixels, mask, hand = load_entry(out, entry)
        np.testing.assert_array_equal(pixels[:, :, 0], expected[index][0])
        np.testing.assert_array_equal(mask, expected[index][1])
        assert hand.all()
    # Regenerating the same set updates the entries in place.
    nuclei.make_training_set(tmp_path / "train", 4, seed=9, size=48)
    assert len(load_manifest(out)["entries"]) == 4


def test_sampled_scenes_stay_inside_narrowed_ranges():
    ranges = nuclei.SynthParams(radius=(12.0, 14.0), photons=(100.0, 200.0), defocus_probability=0.0)
    for seed in range(10):
        scene = ranges.sample(seed)
        assert 12.0 <= scene.radius <= 14.0 and 100.0 <= scene.photons <= 200.0
        assert not scene.defocus
    assert ranges.sample(4) == nuclei.sample_params(4, ranges)
