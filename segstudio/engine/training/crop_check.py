"""Whether a network can train on crops of a given size, found before any data is read.

A crop too small for a network fails deep inside torch: a U-Net that halves its maps four times turns a
16 px crop into one value per channel, and batch normalisation cannot take statistics over one value
("Expected more than 1 value per channel when training"). That happens at the first step with one crop
per step, or later, at the last short batch of an epoch or after an out-of-memory retry. So the crop is
tried here with one crop per step, on a copy of the network on the "meta" device (shapes only: nothing
is computed or allocated), and a crop that fails is refused with the smallest one that works.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from segstudio.engine.training.errors import TrainingError

#: Crops are tried in steps of this many pixels (every network here divides its input by a power of 2).
CROP_STEP = 16
#: The largest crop tried when looking for the smallest one that works.
LARGEST_TRIED = 1024


def crop_works(model: nn.Module, in_channels: int, crop: int) -> bool:
    """Whether one training step on a single ``crop`` x ``crop`` crop goes through the network."""
    probe = _meta_copy(model)
    return _forward_ok(probe, in_channels, crop)


def smallest_crop(model: nn.Module, in_channels: int) -> int | None:
    """The smallest crop (a multiple of CROP_STEP) that trains with one crop per step; None if none up to
    LARGEST_TRIED does."""
    probe = _meta_copy(model)
    for crop in range(CROP_STEP, LARGEST_TRIED + 1, CROP_STEP):
        if _forward_ok(probe, in_channels, crop):
            return crop
    return None


def check_crop(model: nn.Module, in_channels: int, crop: int, model_name: str) -> None:
    """Refuse a crop the network cannot train on, naming the smallest one that works."""
    if crop_works(model, in_channels, crop):
        return
    smallest = smallest_crop(model, in_channels)
    if smallest is None:
        raise TrainingError(f"{model_name} cannot train on crops of {crop} px, nor on any crop up to "
                            f"{LARGEST_TRIED} px, with one crop per step")
    raise TrainingError(f"A crop of {crop} px is too small for {model_name}: its deepest layers would see "
                        f"too few pixels to learn from. The smallest crop that works is {smallest} px "
                        f"(--crop {smallest}). Nothing was trained.")


def _meta_copy(model: nn.Module) -> nn.Module:
    # A copy, so that neither the weights nor the norm layers' running statistics change; its tensors are
    # made on the meta device directly (a model on a full GPU is not copied there), where the forward pass
    # checks shapes without computing anything.
    memo: dict = {}
    for p in model.parameters():
        memo[id(p)] = nn.Parameter(torch.empty_like(p, device="meta"), requires_grad=p.requires_grad)
    for b in model.buffers():
        memo[id(b)] = torch.empty_like(b, device="meta")
    probe = copy.deepcopy(model, memo)
    for module in probe.modules():  # hooks (a caller's probes, a test's fault injection) watch the real model
        module._forward_pre_hooks.clear()
        module._forward_hooks.clear()
    probe.train()
    return probe


def _forward_ok(probe: nn.Module, in_channels: int, crop: int) -> bool:
    try:
        with torch.no_grad():
            probe(torch.empty((1, int(in_channels), crop, crop), device="meta"))
    except (ValueError, RuntimeError, IndexError):
        return False
    return True
