"""Generated H&E slides: hematoxylin-stained nuclei on eosin-stained stroma, with the colour differences
between labs, and every nucleus known.

The nuclei (their shapes, crowding and chromatin texture) come from the fluorescence generator: its nuclear
signal becomes the hematoxylin density. Eosin fills the stroma as a patchy field with gaps (lumens, fat),
and both stains are turned into colour by the Beer-Lambert law with stain vectors that vary per slide
around Ruifrok & Johnston's standard ones, as they do between labs, stainers and scanners. Enough to show
and test the H&E path of a nuclei model; not a substitute for real slides.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from segstudio.synth.nuclei import SceneParams, generate_nuclei_image

# Hematoxylin (blue-purple), eosin (pink) optical densities per unit stain, as [r, g, b].
STANDARD_HEMATOXYLIN = (0.65, 0.70, 0.29)
STANDARD_EOSIN = (0.07, 0.99, 0.11)


@dataclass(frozen=True)
class StainLook:
    """One lab's slide: stain colours, how much of each stain took, and the scanner's white."""

    hematoxylin: tuple[float, float, float]
    eosin: tuple[float, float, float]
    hematoxylin_strength: float
    eosin_strength: float
    white: float  # background brightness, 0..255


def random_look(rng: np.random.Generator) -> StainLook:
    def jitter(vector):
        v = np.clip(np.asarray(vector) + rng.normal(0.0, 0.05, 3), 0.02, None)
        return tuple(float(x) for x in v / np.linalg.norm(v))

    return StainLook(jitter(STANDARD_HEMATOXYLIN), jitter(STANDARD_EOSIN), float(rng.uniform(0.7, 1.3)),
                     float(rng.uniform(0.5, 1.4)), float(rng.uniform(225.0, 250.0)))


def _smooth_field(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    coarse = rng.random((max(2, h // cells), max(2, w // cells))).astype(np.float32)
    return cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)


def generate_he_image(seed: int, *, height: int = 256, width: int = 256, params: SceneParams | None = None,
                      look: StainLook | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(RGB uint8 (H, W, 3), nucleus mask uint8 (0/1), instance ids) of one generated H&E slide."""
    rng = np.random.default_rng(seed)
    signal, mask, instances = generate_nuclei_image(seed, height=height, width=width, bit_depth=16, params=params)
    signal = signal.astype(np.float32)
    low, high = np.percentile(signal, [5.0, 99.5])
    nuclear = np.clip((signal - low) / max(float(high - low), 1e-6), 0.0, 1.0)
    look = look or random_look(rng)
    # Stroma: patchy eosin with gaps; cytoplasm around nuclei a little pinker; nuclei take some eosin too.
    stroma = np.clip(_smooth_field(rng, height, width, 24) * 1.4 - 0.2, 0.0, 1.0)
    fibres = np.clip(_smooth_field(rng, height, width, 4), 0.0, 1.0)
    eosin = (0.15 + 0.55 * stroma * (0.6 + 0.4 * fibres)) * look.eosin_strength
    eosin += 0.1 * cv2.GaussianBlur((mask > 0).astype(np.float32), (0, 0), 4.0)
    hematoxylin = (0.04 + 1.1 * nuclear ** 0.8) * look.hematoxylin_strength
    density = (hematoxylin[..., None] * np.asarray(look.hematoxylin, np.float32)
               + eosin[..., None] * np.asarray(look.eosin, np.float32))
    rgb = look.white * np.power(10.0, -density)
    rgb += rng.normal(0.0, 2.0, rgb.shape)
    rgb = cv2.GaussianBlur(rgb.astype(np.float32), (0, 0), 0.6)
    return np.clip(rgb, 0, 255).astype(np.uint8), mask, instances
