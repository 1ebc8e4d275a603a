"""Pinned output of the nuclei generator for fixed seeds.

Images are a pure function of (seed, parameters), and the bundled model and sample images were made from
them; a refactor of the generator must therefore neither change a pixel nor draw from the random stream in a
different order. The digests and the next draw after each image were recorded from the generator before
``generate_nuclei_image`` was split into helpers (numpy 2.4, OpenCV 5.0): a deliberate change of the generator
updates them, anything else that moves them is a bug. The cases reach every optional branch (spots of mixed
and of one sign, haze, debris, mitoses, kidneys, defocus, 8 and 16 bit, scenes drawn from ranges).
"""
import dataclasses
import hashlib

import cv2
import numpy as np
import pytest

from segstudio.synth import nuclei

BUSY = nuclei.SceneParams(radius=9.0, spots=2.5, spot_sign=0.0, haze=0.6, debris=5.0, defocus=True,
                          mitotic_fraction=0.06, kidney_fraction=0.25)

# name: (seed, keyword arguments, sha256 of (image, mask, instances), next rng.integers(0, 2**62) after it)
PINNED = {
    "default_16": (11, dict(height=96, width=80),
                   "feb450982c50cb57db414c254cb4fef3e16b3b66d46d54ad552b5114970ada9f", 2091289225545391811),
    "default_8": (12, dict(height=64, width=72, bit_depth=8),
                  "c4bea3e3210174c5042b8dc0b9b0abb86305bfca510ecce02cb67f9327b494c0", 4146121323063460136),
    "busy_scene": (5, dict(height=96, width=96, params=BUSY),
                   "e1ca33b570d1dae5227b53bb762a9d717be97e05faf9b281748d64001c2b41f1", 4111300902764299299),
    "bright_spots_8": (6, dict(height=80, width=64, bit_depth=8,
                               params=dataclasses.replace(BUSY, spot_sign=1.0, defocus=False)),
                       "7d0a4a1207c3a9f07c2c29c382b8b8fb0a33c978b313579dc5e0ba7d24dd8567", 4248668687339321813),
    "narrow_ranges": (9, dict(height=64, width=64,
                              params=nuclei.SynthParams(radius=(6.0, 8.0), defocus_probability=1.0)),
                      "7bc169502d2c9f2aa7c1d587d1c28deb150d8646a287d8fd246506faf1351b50", 1811638497275526214),
}


# Other releases of numpy or OpenCV may round a blur or a random draw differently, which moves the digests
# without any change to the generator: there the pins mean nothing, so they are skipped rather than failed.
RECORDED_WITH = {"numpy": "2.4", "OpenCV": "5.0"}
_RUNNING = {"numpy": np.__version__, "OpenCV": cv2.__version__}
pytestmark = pytest.mark.skipif(
    any(not _RUNNING[lib].startswith(version + ".") for lib, version in RECORDED_WITH.items()),
    reason=f"digests recorded with {RECORDED_WITH}, running {_RUNNING}")


def _digest(arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(str(a.dtype).encode())
        h.update(str(a.shape).encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


@pytest.mark.parametrize("name", sorted(PINNED))
def test_fixed_seed_gives_the_pinned_image(name):
    seed, kwargs, digest, _ = PINNED[name]
    assert _digest(nuclei.generate_nuclei_image(seed, **kwargs)) == digest


@pytest.mark.parametrize("name", sorted(PINNED))
def test_generator_consumes_the_pinned_amount_of_the_random_stream(name):
    # iter_training_images draws the bit depth and the image from one stream; the next draw after an image
    # shows that exactly the same numbers were taken, in the same order.
    seed, kwargs, _, next_draw = PINNED[name]
    rng = np.random.default_rng(seed)
    nuclei.generate_nuclei_image(rng, **kwargs)
    assert int(rng.integers(0, 2**62)) == next_draw
