"""Generated H&E slides: bright background, purple nuclei where the truth says, colours that vary by lab."""
import numpy as np

from segstudio.synth.he import generate_he_image


def test_nuclei_are_darker_and_bluer_than_the_stroma_on_a_bright_background():
    rgb, mask, instances = generate_he_image(1, height=128, width=128)
    assert rgb.dtype == np.uint8 and rgb.shape == (128, 128, 3) and mask.shape == (128, 128)
    assert instances.max() > 3 and set(np.unique(mask)) <= {0, 1}
    nuclei, stroma = rgb[mask > 0].astype(float), rgb[mask == 0].astype(float)
    assert nuclei.mean() < stroma.mean() - 40
    assert (nuclei[:, 2] - nuclei[:, 1]).mean() > 0  # blue over green: hematoxylin
    assert np.percentile(rgb.mean(axis=-1), 95) > 180  # bright background, like a brightfield slide


def test_same_seed_same_slide_other_seed_other_lab_colours():
    a, _, _ = generate_he_image(4, height=64, width=64)
    b, _, _ = generate_he_image(4, height=64, width=64)
    c, _, _ = generate_he_image(5, height=64, width=64)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
