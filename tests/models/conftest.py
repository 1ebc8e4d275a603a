"""Tiny instances of every architecture: same layer structure as the published networks, a few channels."""
import pytest
import torch

from segstudio.models.registry import build_model

TINY_CONFIGS = {
    "unet": dict(base_channels=4, depth=3),
    "fcn32s": dict(width=1 / 16, fc_channels=16),
    "fcn16s": dict(width=1 / 16, fc_channels=16),
    "fcn8s": dict(width=1 / 16, fc_channels=16),
    "deconvnet": dict(width=1 / 16, fc_channels=16),
    "pspnet": dict(backbone="resnet18", width=1 / 16),
    "deeplabv3plus": dict(backbone="resnet18", width=1 / 16),
}


@pytest.fixture
def build_tiny():
    def build(name, *, in_channels=1, num_classes=3, seed=0, **overrides):
        torch.manual_seed(seed)
        return build_model(name, in_channels=in_channels, num_classes=num_classes,
                           **{**TINY_CONFIGS[name], **overrides})

    return build


@pytest.fixture(autouse=True)
def _single_thread(single_torch_thread):
    """Every test in this folder runs torch on one thread."""
