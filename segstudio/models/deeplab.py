"""DeepLabv3+ (Chen et al. 2018): an atrous ResNet (output stride 16 or 8), atrous spatial pyramid pooling
(parallel branches looking at several distances at once), and a light decoder that brings back detail from a
low-level 1/4-size feature map. ASPP and decoder use depthwise separable convolutions."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from segstudio.models.backbones import build_resnet_backbone
from segstudio.models.blocks import ConvNormAct, SegmentationModel, SeparableConv, scaled
from segstudio.models.registry import register
from segstudio.models.taps import TapSpec


class ImagePooling(nn.Module):
    """Global average of the features, broadcast back: the ASPP branch that sees the whole tile."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        # A 1x1 pooled map has one value per channel: batch norm there breaks batch-size-1 fine-tuning.
        self.conv = nn.Conv2d(in_ch, out_ch, 1)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.act(self.conv(F.adaptive_avg_pool2d(x, 1)))
        return pooled.expand(-1, -1, *x.shape[-2:])


class ASPP(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, rates: tuple[int, ...], dropout: float):
        super().__init__()
        self.rates = tuple(rates)
        self.conv1x1 = ConvNormAct(in_ch, out_ch, 1)
        for rate in self.rates:
            self.add_module(f"rate{rate}", SeparableConv(in_ch, out_ch, dilation=rate))
        self.image_pool = ImagePooling(in_ch, out_ch)
        self.project = nn.Sequential()
        self.project.add_module("fuse", ConvNormAct(out_ch * (len(self.rates) + 2), out_ch, 1))
        self.project.add_module("drop", nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = [self.conv1x1(x)]
        branches += [getattr(self, f"rate{rate}")(x) for rate in self.rates]
        branches.append(self.image_pool(x))
        return self.project(torch.cat(branches, dim=1))


class DeepLabV3Plus(SegmentationModel):
    arch = "deeplabv3plus"

    def __init__(
        self,
        *,
        in_channels: int = 3,
        num_classes: int = 2,
        backbone: str = "resnet50",
        width: float = 1.0,
        output_stride: int = 16,
        atrous_rates: tuple[int, ...] | list[int] | None = None,
        aspp_channels: int = 256,
        low_level_channels: int = 48,
        dropout: float = 0.1,
        pretrained_backbone: str | bool = False,
        pad_mode: str = "reflect",
    ):
        if output_stride not in (8, 16):
            raise ValueError(f"DeepLabv3+ output_stride must be 8 or 16, got {output_stride}")
        if atrous_rates is None:
            # The rates scale with the output stride so the branches cover the same image distances.
            atrous_rates = (6, 12, 18) if output_stride == 16 else (12, 24, 36)
        rates = tuple(int(r) for r in atrous_rates)
        config = dict(in_channels=in_channels, num_classes=num_classes, backbone=backbone, width=width,
                      output_stride=output_stride, atrous_rates=list(rates), aspp_channels=aspp_channels,
                      low_level_channels=low_level_channels, dropout=dropout,
                      pretrained_backbone=pretrained_backbone, pad_mode=pad_mode)
        super().__init__(config=config, stride=output_stride, pad_mode=pad_mode)
        self.output_stride = output_stride
        self.backbone = build_resnet_backbone(backbone, width=width, in_channels=in_channels,
                                              output_stride=output_stride, pretrained=pretrained_backbone)
        aspp_ch = scaled(aspp_channels, width)
        low_ch = scaled(low_level_channels, width)
        self.aspp = ASPP(self.backbone.channels["layer4"], aspp_ch, rates, dropout)
        self.low_level = ConvNormAct(self.backbone.channels["layer1"], low_ch, 1)
        self.upsample_context = nn.Upsample(scale_factor=output_stride // 4, mode="bilinear", align_corners=False)
        self.merge = nn.Identity()
        self.decoder = nn.Sequential()
        self.decoder.add_module("sep1", SeparableConv(aspp_ch + low_ch, aspp_ch))
        self.decoder.add_module("sep2", SeparableConv(aspp_ch, aspp_ch))
        self.classifier = nn.Conv2d(aspp_ch, num_classes, 1)

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor:
        features = self.backbone(x)
        context = self.upsample_context(self.aspp(features["layer4"]))
        detail = self.low_level(features["layer1"])
        scores = self.classifier(self.decoder(self.merge(torch.cat([context, detail], dim=1))))
        return F.interpolate(scores, size=x.shape[-2:], mode="bilinear", align_corners=False)

    def encoder_modules(self) -> list[tuple[str, nn.Module]]:
        return [("backbone", self.backbone)]

    def tap_specs(self) -> list[TapSpec]:
        # Resolution levels: stem 1/2, layer1 1/4, layer2 1/8, layer3 and layer4 and ASPP at 1/output_stride;
        # the decoder works at 1/4 (level 2), where the low-level skip joins the upsampled context.
        c = self.backbone.channels
        os_ = self.output_stride
        deep = os_.bit_length() - 1  # log2 of the output stride
        l3 = "1/16 size" if os_ == 16 else "1/8 size, kept there by dilated convolutions"
        taps = [
            TapSpec("stem", "encoder", "backbone.relu",
                    f"First 7x7 convolution at 1/2 size ({c['stem']} maps): edges, colour and texture.", level=1),
            TapSpec("layer1", "encoder", "backbone.layer1",
                    f"ResNet stage 1 at 1/4 size ({c['layer1']} maps); the decoder borrows detail from here.",
                    level=2),
            TapSpec("layer2", "encoder", "backbone.layer2", f"ResNet stage 2 at 1/8 size ({c['layer2']} maps).",
                    level=3),
            TapSpec("layer3", "encoder", "backbone.layer3", f"ResNet stage 3 at {l3} ({c['layer3']} maps).",
                    level=deep),
            TapSpec("layer4", "encoder", "backbone.layer4",
                    f"ResNet stage 4 at 1/{os_} size, atrous instead of smaller ({c['layer4']} maps).", level=deep),
            TapSpec("aspp 1x1", "context", "aspp.conv1x1", "ASPP branch looking only at each position itself.",
                    level=deep),
        ]
        for rate in self.aspp.rates:
            taps.append(TapSpec(f"aspp branch rate {rate}", "context", f"aspp.rate{rate}",
                                f"ASPP branch whose 3x3 filter taps are {rate} positions apart: it relates each "
                                f"point to its surroundings about {rate * os_} pixels away.", level=deep))
        taps += [
            TapSpec("aspp image pooling", "context", "aspp.image_pool",
                    "ASPP branch averaging over the whole tile: the overall context.", level=deep),
            TapSpec("aspp projection", "fusion", "aspp.project",
                    "All ASPP branches combined into one set of context maps.", level=deep),
            TapSpec("context upsampled", "decoder", "upsample_context",
                    "The context maps enlarged to 1/4 size to meet the low-level detail.", level=2),
            TapSpec("low-level skip", "skip", "low_level",
                    "Fine 1/4-size features from layer1, reduced to a few maps: the detail that sharpens outlines.",
                    level=2, pairs_with="context upsampled"),
            TapSpec("merge (after concat)", "fusion", "merge", "Context and low-level detail side by side.",
                    level=2),
            TapSpec("decoder", "decoder", "decoder",
                    "Two separable 3x3 layers turning context plus detail into sharp class evidence.", level=2),
            TapSpec("logits", "logits", "output",
                    "Class scores upsampled x4 to the image size; the highest score becomes the label.", level=0),
        ]
        return taps


@register("deeplabv3plus",
          description="DeepLabv3+: atrous ResNet, ASPP, decoder with low-level skip (backbone, width, output_stride)")
def build_deeplabv3plus(*, in_channels: int, num_classes: int, **config) -> DeepLabV3Plus:
    return DeepLabV3Plus(in_channels=in_channels, num_classes=num_classes, **config)
