"""The training loss: weighted cross-entropy + soft Dice, and the learning-rate schedule."""
from __future__ import annotations

import torch

from segstudio.engine.training.objective import learning_rate_at, segmentation_loss


def test_loss_ignores_zero_weight_pixels_and_rewards_right_answers():
    target = torch.zeros(1, 8, 8, dtype=torch.long)
    target[:, 2:6, 2:6] = 1
    right = torch.stack([1 - target, target], 1).float() * 8 - 4
    wrong = -right
    assert segmentation_loss(right, target) < 0.1 < 1.0 < segmentation_loss(wrong, target)

    weight = torch.ones(1, 8, 8)
    weight[:, :, :4] = 0
    messy = right.clone()
    messy[:, :, :, :4] = torch.randn(1, 2, 8, 4) * 10
    assert torch.allclose(segmentation_loss(messy, target, weight), segmentation_loss(right, target, weight))

    hand = torch.ones(1, 8, 8)
    hand[:, 0, 0] = 10.0
    one_wrong = right.clone()
    one_wrong[:, :, 0, 0] = -one_wrong[:, :, 0, 0]
    assert segmentation_loss(one_wrong, target, hand) > segmentation_loss(one_wrong, target)


def test_learning_rate_warms_up_then_decays_to_a_twentieth():
    base, total = 1e-3, 1000
    rates = [learning_rate_at(step, total, base) for step in range(total + 1)]
    warm = 50
    assert rates[0] == base * 0.1 and rates[warm] == base
    assert all(a <= b for a, b in zip(rates[:warm], rates[1:warm + 1]))  # rising during warm-up
    assert all(a >= b for a, b in zip(rates[warm:], rates[warm + 1:]))  # then never rising
    assert rates[-1] == base * 0.05


def test_boundary_loss_rewards_the_border_and_ignores_pixels_weighted_zero():
    from segstudio.engine.training.objective import boundary_loss

    target = torch.zeros(1, 8, 8)
    target[:, :, 3:5] = 1.0  # a two-pixel line between two objects: a quarter of the pixels
    right = (target * 2 - 1) * 8.0
    never = torch.full_like(target, -8.0)  # "never a border", which plain cross-entropy would nearly accept
    assert boundary_loss(right, target) < 0.01
    assert boundary_loss(never, target) > 0.9  # the Dice term makes missing every border cost
    weight = torch.ones_like(target)
    weight[:, :, 3:5] = 0.0  # the border pixels do not count (rotation fill): nothing is missed
    assert boundary_loss(never, target, weight) < 0.05
