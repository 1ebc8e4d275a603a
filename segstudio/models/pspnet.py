"""PSPNet (Zhao et al. 2017): a dilated ResNet keeps 1/8 resolution, then a pyramid pooling module averages
the features over 1x1, 2x2, 3x3 and 6x6 grids of regions, so every pixel also sees the layout of the whole
tile before the class scores are made."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from segstudio.models.backbones import build_resnet_backbone
from segstudio.models.blocks import ConvNormAct, SegmentationModel, scaled
from segstudio.models.registry import register
from segstudio.models.taps import TapSpec


class PyramidBin(nn.Module):
    """Average over a bins x bins grid, reduce channels, and stretch back to the feature size."""

    def __init__(self, in_ch: int, out_ch: int, bins: int):
        super().__init__()
        self.bins = bins
        self.pool = nn.AdaptiveAvgPool2d(bins)
        # Batch statistics over a single 1x1 value per channel break fine-tuning with batch size 1,
        # so the global bin uses a biased convolution without normalisation.
        if bins == 1:
            self.reduce = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1), nn.ReLU())
        else:
            self.reduce = ConvNormAct(in_ch, out_ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(self.reduce(self.pool(x)), size=x.shape[-2:], mode="bilinear", align_corners=False)


class PyramidPooling(nn.Module):
    def __init__(self, in_ch: int, bins=(1, 2, 3, 6)):
        super().__init__()
        self.bins = tuple(bins)
        reduced = max(1, in_ch // len(self.bins))
        for b in self.bins:
            self.add_module(f"bin{b}", PyramidBin(in_ch, reduced, b))
        self.concat = nn.Identity()
        self.out_channels = in_ch + reduced * len(self.bins)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = [getattr(self, f"bin{b}")(x) for b in self.bins]
        return self.concat(torch.cat([x, *pooled], dim=1))


class PSPNet(SegmentationModel):
    arch = "pspnet"

    def __init__(
        self,
        *,
        in_channels: int = 3,
        num_classes: int = 2,
        backbone: str = "resnet50",
        width: float = 1.0,
        bins: tuple[int, ...] | list[int] = (1, 2, 3, 6),
        dropout: float = 0.1,
        pretrained_backbone: str | bool = False,
        pad_mode: str = "reflect",
    ):
        bins = tuple(int(b) for b in bins)
        config = dict(in_channels=in_channels, num_classes=num_classes, backbone=backbone, width=width,
                      bins=list(bins), dropout=dropout, pretrained_backbone=pretrained_backbone, pad_mode=pad_mode)
        super().__init__(config=config, stride=8, pad_mode=pad_mode)
        self.backbone = build_resnet_backbone(backbone, width=width, in_channels=in_channels, output_stride=8,
                                              pretrained=pretrained_backbone)
        features = self.backbone.channels["layer4"]
        self.ppm = PyramidPooling(features, bins)
        self.head = nn.Sequential()
        self.head.add_module("fuse", ConvNormAct(self.ppm.out_channels, scaled(512, width), 3))
        self.head.add_module("drop", nn.Dropout2d(dropout))
        self.classifier = nn.Conv2d(scaled(512, width), num_classes, 1)

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor:
        features = self.backbone(x)["layer4"]
        scores = self.classifier(self.head(self.ppm(features)))
        return F.interpolate(scores, size=x.shape[-2:], mode="bilinear", align_corners=False)

    def encoder_modules(self) -> list[tuple[str, nn.Module]]:
        return [("backbone", self.backbone)]

    def tap_specs(self) -> list[TapSpec]:
        # Resolution levels: the stem works at 1/2, layer1 at 1/4, everything from layer2 on at 1/8 (level 3);
        # the pyramid bins are stretched back to that grid.
        c = self.backbone.channels
        taps = [
            TapSpec("stem", "encoder", "backbone.relu",
                    f"First 7x7 convolution at 1/2 size ({c['stem']} maps): edges, colour and texture.", level=1),
            TapSpec("layer1", "encoder", "backbone.layer1", f"ResNet stage 1 at 1/4 size ({c['layer1']} maps).",
                    level=2),
            TapSpec("layer2", "encoder", "backbone.layer2", f"ResNet stage 2 at 1/8 size ({c['layer2']} maps).",
                    level=3),
            TapSpec("layer3", "encoder", "backbone.layer3",
                    f"ResNet stage 3, kept at 1/8 size by dilated convolutions ({c['layer3']} maps).", level=3),
            TapSpec("layer4", "encoder", "backbone.layer4",
                    f"ResNet stage 4, still at 1/8 size ({c['layer4']} maps): the features the pyramid pools.",
                    level=3),
        ]
        for b in self.ppm.bins:
            region = "the whole tile" if b == 1 else f"each of {b}x{b} regions of the tile"
            taps.append(TapSpec(f"ppm bin {b}", "context", f"ppm.bin{b}",
                                f"Features averaged over {region}, stretched back: context at a scale of 1/{b} "
                                "of the tile.", level=3))
        taps += [
            TapSpec("ppm concat", "fusion", "ppm.concat",
                    "Local features and all pyramid levels side by side.", level=3),
            TapSpec("head", "decoder", "head.fuse", "A 3x3 layer combining local detail with the pyramid context.",
                    level=3),
            TapSpec("logits", "logits", "output",
                    "Class scores upsampled x8 to the image size; the highest score becomes the label.", level=0),
        ]
        return taps


@register("pspnet", description="PSPNet: dilated ResNet + pyramid pooling (bins 1,2,3,6) (backbone, width)")
def build_pspnet(*, in_channels: int, num_classes: int, **config) -> PSPNet:
    return PSPNet(in_channels=in_channels, num_classes=num_classes, **config)
