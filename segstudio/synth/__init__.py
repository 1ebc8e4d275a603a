"""Generated training data with known ground truth, for the bundled model, the samples and the tests.

Imports segstudio.core only: the generator writes datasets through core.dataset like any export.
"""
from segstudio.synth.nuclei import (
    SceneParams,
    SynthParams,
    dice,
    generate_nuclei_image,
    iou,
    iter_training_images,
    make_training_set,
    otsu_baseline,
    sample_params,
)

__all__ = [
    "SceneParams",
    "SynthParams",
    "dice",
    "generate_nuclei_image",
    "iou",
    "iter_training_images",
    "make_training_set",
    "otsu_baseline",
    "sample_params",
]
