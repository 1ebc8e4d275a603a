"""A hand-built network with a boundary output, and an image whose answer is known: two touching squares that
the distance transform sees as one rectangle, with a dimmer line where they meet, which the network calls
their border. Saved as a model file through a test-only architecture, so the library, the command line and
the window load it as they load any model."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

ARCH = "boundary-test"
NUCLEUS, BORDER = 200, 100  # pixel values: inside a nucleus, on the line where two meet


class BoundaryNet(nn.Module):
    """Outputs (background, nucleus, boundary) logits from raw pixel values (normalisation "none")."""

    arch = ARCH

    def __init__(self, in_channels: int = 1, num_classes: int = 3) -> None:
        super().__init__()
        self.config = {"in_channels": in_channels, "num_classes": num_classes}
        self.gain = nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = x[:, :1]
        background = torch.zeros_like(v)
        nucleus = self.gain * (v - 50.0) / 5.0  # any pixel brighter than 50
        boundary = self.gain * (15.0 - (v - BORDER).abs() / 5.0)  # only pixels near the border's value
        return torch.cat([background, nucleus, boundary], dim=1)


def two_touching_squares() -> np.ndarray:
    """A 60 x 80 image: a 20 x 41 rectangle made of two squares with a one-pixel border line between them."""
    image = np.zeros((60, 80), np.uint8)
    image[20:40, 20:61] = NUCLEUS
    image[20:40, 40] = BORDER
    return image


def meta(**changes):
    from segstudio.models.checkpoint import ModelMeta

    fields = dict(name="borders", version=1, arch=ARCH, config={"in_channels": 1, "num_classes": 3},
                  classes=[{"id": 0, "name": "background", "color": [0, 0, 0]},
                           {"id": 1, "name": "nucleus", "color": [255, 0, 0]}],
                  normalisation={"kind": "none"}, objects={"boundary_channel": 2})
    fields.update(changes)
    return ModelMeta(**fields)


def register(monkeypatch) -> None:
    """Make the architecture known to the registry for this test only."""
    from segstudio.models import registry

    registry.list_models()  # the built-in networks first
    monkeypatch.setitem(registry._REGISTRY, ARCH, registry._Registered(
        ARCH, lambda *, in_channels, num_classes: BoundaryNet(in_channels, num_classes), "test"))


def save(path, monkeypatch, **changes):
    from segstudio.models.checkpoint import save_checkpoint

    register(monkeypatch)
    save_checkpoint(path, BoundaryNet(), meta(**changes))
    return path
