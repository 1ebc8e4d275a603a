"""U-Net (Ronneberger et al. 2015): a contracting path of conv levels and max-pools, an expanding path of
2x2 up-convolutions, and at every level a skip that concatenates the encoder's tensor to the decoder's."""
from __future__ import annotations

import logging

import torch
import torch.nn as nn

from segstudio.models.blocks import DoubleConv, SegmentationModel
from segstudio.models.registry import register
from segstudio.models.taps import TapSpec

log = logging.getLogger(__name__)


class UNetUpLevel(nn.Module):
    """One expanding level. The skip and the concatenation pass through identities so both sides of the
    skip and the merged tensor can be hooked by name."""

    def __init__(self, in_ch: int, out_ch: int, *, norm: str):
        super().__init__()
        self.up = nn.ConvTranspose2d(in_ch, out_ch, kernel_size=2, stride=2)
        self.skip = nn.Identity()
        self.merge = nn.Identity()
        self.conv = DoubleConv(2 * out_ch, out_ch, norm=norm)

    def forward(self, below: torch.Tensor, encoder_tensor: torch.Tensor) -> torch.Tensor:
        up = self.up(below)
        skip = self.skip(encoder_tensor)
        return self.conv(self.merge(torch.cat([skip, up], dim=1)))


class UNet(SegmentationModel):
    arch = "unet"

    def __init__(
        self,
        *,
        in_channels: int = 1,
        num_classes: int = 2,
        depth: int = 4,
        base_channels: int = 64,
        norm: str = "batch",
        pad_mode: str = "reflect",
        pretrained_backbone: str | bool = False,
    ):
        if pretrained_backbone:
            # Accepted so one "start from ImageNet" switch works for every architecture.
            log.info("U-Net has no ImageNet backbone; starting from random initialisation")
        if depth < 1:
            raise ValueError(f"U-Net depth must be at least 1, got {depth}")
        if base_channels < 1:
            raise ValueError(f"U-Net base_channels must be at least 1, got {base_channels}")
        config = dict(in_channels=in_channels, num_classes=num_classes, depth=depth,
                      base_channels=base_channels, norm=norm, pad_mode=pad_mode,
                      pretrained_backbone=pretrained_backbone)
        super().__init__(config=config, stride=2**depth, pad_mode=pad_mode)
        self.depth = depth
        widths = [base_channels * 2**level for level in range(depth + 1)]
        self.widths = widths
        # enc1..enc{depth}: levels with a skip; the deepest level is the bottleneck.
        previous = in_channels
        for level in range(1, depth + 1):
            setattr(self, f"enc{level}", DoubleConv(previous, widths[level - 1], norm=norm))
            setattr(self, f"pool{level}", nn.MaxPool2d(2))
            previous = widths[level - 1]
        self.bottleneck = DoubleConv(previous, widths[depth], norm=norm)
        for level in range(depth, 0, -1):
            setattr(self, f"dec{level}", UNetUpLevel(widths[level], widths[level - 1], norm=norm))
        self.head = nn.Conv2d(widths[0], num_classes, kernel_size=1)

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for level in range(1, self.depth + 1):
            x = getattr(self, f"enc{level}")(x)
            skips.append(x)
            x = getattr(self, f"pool{level}")(x)
        x = self.bottleneck(x)
        for level in range(self.depth, 0, -1):
            x = getattr(self, f"dec{level}")(x, skips[level - 1])
        return self.head(x)

    def encoder_modules(self) -> list[tuple[str, nn.Module]]:
        # The contracting levels; the bottleneck belongs to both paths and stays trainable.
        return [(f"enc{level}", getattr(self, f"enc{level}")) for level in range(1, self.depth + 1)]

    def tap_specs(self) -> list[TapSpec]:
        # U-Net level n (enc n, skip n, dec n) works at 1/2**(n-1) of the image: resolution level n - 1.
        taps = []
        for level in range(1, self.depth + 1):
            taps.append(TapSpec(
                f"enc{level}", "encoder", f"enc{level}",
                f"Contracting level {level}: {self.widths[level - 1]} feature maps at 1/{2 ** (level - 1)} of the "
                "image size. Early levels respond to edges and texture, deeper ones to whole structures.",
                level=level - 1))
        taps.append(TapSpec(
            "bottleneck", "context", "bottleneck",
            f"The deepest, coarsest level (1/{2 ** self.depth} size): what the network knows about the whole "
            "neighbourhood before it starts drawing the mask back at full detail.", level=self.depth))
        for level in range(self.depth, 0, -1):
            w = self.widths[level - 1]
            up = f"up{level} (decoder before concat)"
            taps += [
                TapSpec(up, "decoder", f"dec{level}.up",
                        f"The coarser prediction upsampled by 2 ({w} maps): where the network thinks objects are, "
                        "but with blurry outlines.", level=level - 1),
                TapSpec(f"skip{level} (from enc{level})", "skip", f"dec{level}.skip",
                        f"The sharp encoder maps copied across from enc{level} ({w} maps): fine detail that lets "
                        "the decoder put boundaries in the right place.", level=level - 1, pairs_with=up),
                TapSpec(f"merge{level} (after concat)", "fusion", f"dec{level}.merge",
                        f"Skip and upsampled maps side by side ({2 * w} maps), the input the level combines.",
                        level=level - 1),
                TapSpec(f"dec{level}", "decoder", f"dec{level}.conv",
                        f"Expanding level {level} after combining detail and context ({w} maps).", level=level - 1),
            ]
        taps.append(TapSpec("logits", "logits", "output",
                            "Per-class scores at every pixel; the highest score becomes the predicted label.",
                            level=0))
        return taps


@register("unet", description="U-Net: encoder-decoder with concatenated skips (depth, base_channels)")
def build_unet(*, in_channels: int, num_classes: int, **config) -> UNet:
    return UNet(in_channels=in_channels, num_classes=num_classes, **config)
