"""Colour deconvolution: the hematoxylin channel of an H&E slide, bright where the nuclear stain is dense.

A model trained on fluorescence nuclei (bright nuclei on a dark background) then sees an H&E slide the way
it learnt: hematoxylin marks nuclei, and its optical density is high there and near zero on the white
background. The separation is scikit-image's (`separate_stains`, Ruifrok & Johnston's method) with the
stain vectors stored in the model's metadata, so a lab whose stains differ can set its own.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from segstudio.core.model_fit import HE_STAIN_VECTORS

# Pixels used to find the normalisation levels of a whole slide (a strided sample, like the display's).
_LEVEL_SAMPLE_PIXELS = 1 << 20


def separation_matrix(vectors: Sequence[Sequence[float]] | None) -> np.ndarray:
    """The matrix taking optical densities to stain amounts: the inverse of the normalised stain vectors."""
    rows = np.asarray(vectors if vectors is not None else HE_STAIN_VECTORS, dtype=np.float64)
    if rows.shape != (3, 3):
        raise ValueError(f"stain vectors must be three [r, g, b] rows, got shape {rows.shape}")
    rows = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    try:
        return np.linalg.inv(rows)
    except np.linalg.LinAlgError:
        raise ValueError("the stain vectors are not independent (two stains have the same colour)") from None


def hematoxylin(block: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """float32 (h, w) hematoxylin amount of an RGB(A) block (integer or float pixels)."""
    from skimage.color import separate_stains

    block = np.asarray(block)
    if block.ndim != 3 or block.shape[2] < 3:
        raise ValueError("the H&E path needs a colour (RGB) image; this image has "
                         f"{1 if block.ndim == 2 else block.shape[2]} channel(s)")
    rgb = block[..., :3]
    if rgb.dtype.kind == "f":
        rgb = np.clip(np.nan_to_num(rgb, nan=1.0), 0.0, 1.0)
    return separate_stains(rgb, matrix)[..., 0].astype(np.float32)


def is_he(definition: Mapping | None) -> bool:
    return bool(definition) and definition.get("kind") == "he"


def level_sample(pixels: np.ndarray) -> np.ndarray:
    """A strided sample of an (H, W, C) image, at most about a million pixels."""
    h, w = pixels.shape[:2]
    step = max(1, int(np.ceil(np.sqrt(h * w / _LEVEL_SAMPLE_PIXELS))))
    return pixels[::step, ::step]
