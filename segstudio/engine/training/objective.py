"""What fine-tuning optimises: weighted cross-entropy + soft Dice (and, for a model with a boundary output,
binary cross-entropy + Dice of the borders between objects), and the learning-rate schedule."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def segmentation_loss(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None,
                      *, dice_weight: float = 1.0, smooth: float = 1.0) -> torch.Tensor:
    """Weighted per-pixel cross-entropy + soft Dice (mean over classes, summed over the batch).

    `weight` (N, H, W) is 0 where a pixel must not count (padding, rotation fill) and larger than 1 on
    pixels the user painted by hand; Dice uses the same weights so both terms agree on what matters.
    """
    logits = logits.float()
    if weight is None:
        weight = torch.ones(target.shape, dtype=torch.float32, device=target.device)
    ce = F.cross_entropy(logits, target, reduction="none")
    total = weight.sum().clamp_min(1e-6)
    loss = (ce * weight).sum() / total
    if dice_weight > 0:
        num_classes = logits.shape[1]
        probs = logits.softmax(dim=1)
        onehot = F.one_hot(target, num_classes).permute(0, 3, 1, 2).to(probs.dtype)
        w = weight.unsqueeze(1)
        inter = (probs * onehot * w).sum(dim=(0, 2, 3))
        denom = ((probs + onehot) * w).sum(dim=(0, 2, 3))
        dice = (2.0 * inter + smooth) / (denom + smooth)
        loss = loss + dice_weight * (1.0 - dice.mean())
    return loss


def boundary_loss(logit: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None,
                  *, smooth: float = 1.0) -> torch.Tensor:
    """Weighted binary cross-entropy + soft Dice of a boundary logit (N, H, W) against its target (0/1).

    Borders are a few per cent of the pixels: Dice keeps the network from learning "never a border",
    which cross-entropy alone rewards. ``weight`` as in segmentation_loss."""
    logit, target = logit.float(), target.float()
    if weight is None:
        weight = torch.ones_like(target)
    bce = F.binary_cross_entropy_with_logits(logit, target, reduction="none")
    loss = (bce * weight).sum() / weight.sum().clamp_min(1e-6)
    prob = torch.sigmoid(logit)
    inter = (prob * target * weight).sum()
    denom = ((prob + target) * weight).sum()
    return loss + (1.0 - (2.0 * inter + smooth) / (denom + smooth))


def learning_rate_at(step: int, total: int, base: float) -> float:
    """Short linear warm-up, then cosine decay to 5% of the base rate."""
    warm = min(50, max(1, total // 20))
    if step < warm:
        return base * (0.1 + 0.9 * step / warm)
    progress = min(1.0, (step - warm) / max(1, total - warm))
    return base * (0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * progress)))

