"""Training-time augmentation: geometry moves image and targets together, intensity touches the image only.

Samples are a `tv_tensors.Image` (normalised float, (C, H, W)) and a `tv_tensors.Mask` that stacks the
per-pixel targets as channels: class label, hand-painted flag, a "valid" flag and, for a model with a border
output, the instance map (borders.py draws the border target on it after the move). Packing the targets into
one Mask means every geometric transform applies the same flip/rotation to all of them, with nearest
interpolation, and pixels that a rotation brings in from outside the crop get valid=0 so the loss ignores
them instead of learning "background" from the fill value.
"""
from __future__ import annotations

import math

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

LABEL, HAND, VALID, OBJECTS = 0, 1, 2, 3


class RandomRot90(v2.Transform):
    """Rotate by k * 90 degrees (k uniform in 0..3); lossless, so no fill and no interpolation."""

    def make_params(self, flat_inputs):
        return {"k": int(torch.randint(0, 4, ()).item())}

    def transform(self, inpt, params):
        k = params["k"]
        if k == 0:
            return inpt
        return tv_tensors.wrap(torch.rot90(inpt, k, dims=(-2, -1)), like=inpt)


class IntensityJitter(v2.Transform):
    """Gamma, brightness scale and Gaussian noise on the image; masks pass through untouched.

    Works on percentile-normalised input (mostly in [0, 1]): gamma is applied to the clipped values so that
    negative pixels cannot produce NaN, then scaled, then noise is added.
    """

    def __init__(self, scale: float = 0.2, gamma: float = 0.3, noise: float = 0.03):
        super().__init__()
        self.scale = float(scale)
        self.gamma = float(gamma)
        self.noise = float(noise)

    def make_params(self, flat_inputs):
        u = torch.rand(3)
        return {
            "scale": 1.0 + self.scale * (2.0 * float(u[0]) - 1.0),
            "gamma": math.exp(self.gamma * (2.0 * float(u[1]) - 1.0)),
            "sigma": self.noise * float(u[2]),
        }

    def transform(self, inpt, params):
        if not isinstance(inpt, tv_tensors.Image):
            return inpt
        out = inpt.as_subclass(torch.Tensor).clamp(0.0, 1.0).pow(params["gamma"]) * params["scale"]
        if params["sigma"] > 0:
            out = out + params["sigma"] * torch.randn_like(out)
        return tv_tensors.wrap(out, like=inpt)


def build_augmentation(strength: float = 1.0) -> v2.Compose:
    """Flips, 90-degree turns, a small-angle rotation (half of the time) and intensity jitter.

    `strength` scales the rotation angle and the intensity ranges (0 leaves only the lossless flips/turns).
    """
    strength = max(0.0, float(strength))
    steps: list[v2.Transform] = [v2.RandomHorizontalFlip(), v2.RandomVerticalFlip(), RandomRot90()]
    if strength > 0:
        degrees = 15.0 * strength
        steps.append(
            v2.RandomApply(
                [
                    v2.RandomRotation(
                        degrees,
                        interpolation=v2.InterpolationMode.BILINEAR,
                        fill={tv_tensors.Image: 0.0, tv_tensors.Mask: 0},
                    )
                ],
                p=0.5,
            )
        )
        steps.append(IntensityJitter(scale=0.2 * strength, gamma=0.3 * strength, noise=0.03 * strength))
    return v2.Compose(steps)
