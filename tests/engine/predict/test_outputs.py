"""Labels, confidence and uncertainty from blended probabilities, on the host and on the device."""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from segstudio.engine.predict import Predictor
from tests.engine.predict.nets import constant_net, textured_image


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
    from segstudio.engine.predict.outputs import _summarise_into

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


def test_device_summary_matches_the_host_summary(rng):
    from segstudio.engine.predict.outputs import _summarise_into, _summarise_tensor

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
