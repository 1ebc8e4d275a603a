"""Tiny networks and images for the prediction tests, so they exercise the engine alone."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from segstudio.engine.predict import DEFAULT_NORMALISATION, Predictor, PredictSettings, plan_tiles, prepare_input

# Two 3x3 convolutions: a pixel's output depends on pixels up to 2 away, so a pixel at least this far
# inside a tile sees the same context as in a whole-image pass.
RECEPTIVE_RADIUS = 2
# Blending is a weighted average of tile outputs that are bitwise the same computation; what is left is
# float32 rounding of the sums.
PROBABILITY_TOLERANCE = 1e-5


def small_net(in_channels: int = 1, classes: int = 3, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(in_channels, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, classes, 1),
    )
    with torch.no_grad():  # sharpen the outputs so labels and confidences vary across the image
        net[-1].weight.mul_(4.0)
    return net.eval()


def constant_net(logits: list[float]) -> nn.Module:
    """Predicts the same logits at every pixel (weights zero, bias = logits)."""
    net = nn.Conv2d(1, len(logits), 1)
    with torch.no_grad():
        net.weight.zero_()
        net.bias.copy_(torch.tensor(logits))
    return net


def textured_image(height: int, width: int, rng: np.random.Generator, channels: int = 1) -> np.ndarray:
    """uint16 texture whose left half is ten times brighter than its right half.

    Percentiles taken per tile would make both halves look alike; only whole-image levels reproduce the
    whole-image pass.
    """
    yy, xx = np.mgrid[0:height, 0:width]
    base = 800 + 300 * np.sin(yy / 7.0) * np.cos(xx / 5.0)
    base = base[..., None] + rng.normal(0, 120, (height, width, channels))
    base[:, : width // 2] *= 10
    return np.clip(base, 0, 65535).astype(np.uint16)


def full_pass_probabilities(net: nn.Module, image: np.ndarray, in_channels: int = 1) -> np.ndarray:
    x = torch.from_numpy(prepare_input(image, in_channels, DEFAULT_NORMALISATION))[None]
    with torch.no_grad():
        return torch.softmax(net(x), dim=1)[0].numpy()


def tiled_probabilities(predictor: Predictor, image: np.ndarray, settings: PredictSettings) -> np.ndarray:
    bands = list(predictor.iter_probabilities(image, settings))
    rows = [row for row, _ in bands]
    assert rows == sorted(rows) and rows[0] == 0
    return np.concatenate([probs for _, probs in bands], axis=1)


def full_context_mask(height: int, width: int, settings: PredictSettings, radius: int) -> np.ndarray:
    """Pixels that every tile covering them sees with full context, away from the image border."""
    plan = plan_tiles(height, width, settings.tile, settings.overlap, settings.align)
    near_edge = np.zeros((plan.padded_h, plan.padded_w), bool)
    edge_band = np.ones((plan.tile_h, plan.tile_w), bool)
    edge_band[radius:-radius, radius:-radius] = False
    for y, x in plan.origins:
        near_edge[y : y + plan.tile_h, x : x + plan.tile_w] |= edge_band
    good = ~near_edge[:height, :width]
    good[:radius] = good[-radius:] = False
    good[:, :radius] = good[:, -radius:] = False
    return good


class RecordingNet(nn.Module):
    """Wraps a net and records the device and shape of every batch it is given."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net
        self.calls: list[tuple[str, tuple[int, ...]]] = []

    def forward(self, x):
        self.calls.append((x.device.type, tuple(x.shape)))
        return self.net(x)


class RunsOutOfMemory(nn.Module):
    """Raises the error a GPU would when a batch or tile is above a limit, or on a given device type.

    The wrapped net is hidden from nn.Module's registry so that moving the wrapper to another device
    (as the CPU fallback does) leaves the real weights on the CPU where they can run.
    """

    def __init__(self, net, *, max_batch=None, max_side=None, fails_on=None, error=torch.cuda.OutOfMemoryError,
                 message="CUDA out of memory. Tried to allocate 2.00 GiB"):
        super().__init__()
        object.__setattr__(self, "inner", net)
        self.config = {"in_channels": 1}
        self.max_batch, self.max_side, self.fails_on = max_batch, max_side, fails_on
        self.error, self.message = error, message
        self.calls: list[tuple[str, tuple[int, ...]]] = []

    def forward(self, x):
        self.calls.append((x.device.type, tuple(x.shape)))
        too_big = (self.max_batch is not None and x.shape[0] > self.max_batch) or (
            self.max_side is not None and max(x.shape[-2:]) > self.max_side
        )
        if too_big or x.device.type == self.fails_on:
            raise self.error(self.message)
        return self.inner(x)
