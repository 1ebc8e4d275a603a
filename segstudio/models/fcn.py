"""Fully convolutional networks (Long, Shelhamer & Darrell 2015): VGG16 with its classifier turned into
convolutions, class scores at 1/32 size, and - in FCN-16s / FCN-8s - finer scores from pool4 and pool3
fused in before upsampling with transposed convolutions that start out as bilinear interpolation. The pool4 and
pool3 score layers start at zero, as in the paper, so a new FCN-16s/8s starts from its 32s stream's answer."""
from __future__ import annotations

import torch
import torch.nn as nn

from segstudio.models.backbones import (
    VGG16_STAGES,
    convolutionalize_classifier,
    load_vgg16_pretrained,
    vgg16_stage_widths,
    vgg_stage_convs,
)
from segstudio.models.blocks import SegmentationModel, bilinear_upsampler
from segstudio.models.registry import register
from segstudio.models.taps import TapSpec

__all__ = ["FCN", "convolutionalize_classifier"]


def _linear_from_state(state: dict[str, torch.Tensor], prefix: str) -> nn.Linear:
    weight = state[f"{prefix}.weight"]
    # Built on the meta device and filled by assignment: no 400 MB random initialisation to throw away.
    linear = nn.Linear(weight.shape[1], weight.shape[0], device="meta")
    linear.load_state_dict({"weight": weight, "bias": state[f"{prefix}.bias"]}, assign=True)
    return linear


class FCN(SegmentationModel):
    def __init__(
        self,
        *,
        variant: int = 8,
        in_channels: int = 3,
        num_classes: int = 2,
        width: float = 1.0,
        fc_channels: int = 4096,
        dropout: float = 0.5,
        pretrained_backbone: str | bool = False,
        pad_mode: str = "reflect",
    ):
        if variant not in (32, 16, 8):
            raise ValueError(f"FCN variant must be 32, 16 or 8, got {variant}")
        if width <= 0 or fc_channels < 1:
            raise ValueError(f"FCN width and fc_channels must be positive, got {width} and {fc_channels}")
        config = dict(in_channels=in_channels, num_classes=num_classes, width=width, fc_channels=fc_channels,
                      dropout=dropout, pretrained_backbone=pretrained_backbone, pad_mode=pad_mode)
        super().__init__(config=config, stride=32, pad_mode=pad_mode)
        self.arch = f"fcn{variant}s"
        self.variant = variant
        widths = vgg16_stage_widths(width)
        self.widths = widths
        previous = in_channels
        for index, (channels, (_, count)) in enumerate(zip(widths, VGG16_STAGES), start=1):
            stage = vgg_stage_convs(previous, channels, count, batch_norm=False)
            stage.add_module("pool", nn.MaxPool2d(2, 2))
            setattr(self, f"stage{index}", stage)
            previous = channels
        # fc6 as a 7x7 convolution padded to keep the 1/32 grid (instead of the paper's 100-pixel input pad).
        self.fc6 = nn.Sequential()
        self.fc6.add_module("conv", nn.Conv2d(widths[4], fc_channels, 7, padding=3))
        self.fc6.add_module("relu", nn.ReLU())
        self.fc6.add_module("drop", nn.Dropout(dropout))
        self.fc7 = nn.Sequential()
        self.fc7.add_module("conv", nn.Conv2d(fc_channels, fc_channels, 1))
        self.fc7.add_module("relu", nn.ReLU())
        self.fc7.add_module("drop", nn.Dropout(dropout))
        self.score_fr = nn.Conv2d(fc_channels, num_classes, 1)
        skip_scores = []
        if variant <= 16:
            self.upscore2 = bilinear_upsampler(num_classes, 2)
            self.score_pool4 = nn.Conv2d(widths[3], num_classes, 1)
            # The sum is not a module; this identity makes the fused 1/16 scores hookable by name.
            self.score_16s = nn.Identity()
            skip_scores.append(self.score_pool4)
        if variant == 8:
            self.upscore_pool4 = bilinear_upsampler(num_classes, 2)
            self.score_pool3 = nn.Conv2d(widths[2], num_classes, 1)
            self.score_8s = nn.Identity()
            skip_scores.append(self.score_pool3)
        self.upscore = bilinear_upsampler(num_classes, variant)

        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(module.bias)
        nn.init.normal_(self.score_fr.weight, std=0.01)
        for layer in skip_scores:
            # Zero, as in the FCN paper: a fresh FCN-16s/8s answers exactly as the 32s stream does, and each
            # finer stream joins as far as training finds it helps. (Their weights still learn from the
            # first step: the gradient of a skip score layer is its pool's maps times the loss gradient.)
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

        stages = [getattr(self, f"stage{index}") for index in range(1, 6)]
        state = load_vgg16_pretrained(stages, pretrained_backbone, in_channels=in_channels, width=width,
                                      batch_norm=False)
        if state is not None and "classifier.0.weight" in state:
            fc6 = _linear_from_state(state, "classifier.0")
            fc7 = _linear_from_state(state, "classifier.3")
            if fc6.out_features == fc_channels and fc6.in_features == widths[4] * 49:
                self.fc6.conv, self.fc7.conv = convolutionalize_classifier(fc6, fc7, fc6_padding=3)

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor:
        pool3 = self.stage3(self.stage2(self.stage1(x)))
        pool4 = self.stage4(pool3)
        pool5 = self.stage5(pool4)
        scores = self.score_fr(self.fc7(self.fc6(pool5)))
        if self.variant <= 16:
            up = self.upscore2(scores)
            scores = self.score_16s(up + self.score_pool4(pool4))
        if self.variant == 8:
            up = self.upscore_pool4(scores)
            scores = self.score_8s(up + self.score_pool3(pool3))
        return self.upscore(scores)

    def encoder_modules(self) -> list[tuple[str, nn.Module]]:
        # The five VGG16 stages; fc6/fc7 (the convolutionalised classifier) stay trainable.
        return [(f"stage{index}", getattr(self, f"stage{index}")) for index in range(1, 6)]

    def tap_specs(self) -> list[TapSpec]:
        # Resolution levels: stage n ends pooled to 1/2**n; the scores are made at 1/32, 1/16 and 1/8.
        taps = []
        for index, channels in enumerate(self.widths, start=1):
            note = {3: " FCN-8s also scores these maps directly for finer outlines.",
                    4: " FCN-16s and FCN-8s also score these maps directly."}.get(index, "")
            taps.append(TapSpec(f"pool{index}", "encoder", f"stage{index}",
                                f"VGG16 stage {index} after max-pooling: {channels} feature maps at 1/{2 ** index} "
                                f"of the image size.{note}", level=index))
        taps += [
            TapSpec("fc6", "context", "fc6",
                    "The former first classifier layer, now a 7x7 convolution: each position looks at a large "
                    "patch of the image and summarises what it contains.", level=5),
            TapSpec("fc7", "context", "fc7", "The former second classifier layer (1x1 convolution).", level=5),
            TapSpec("score_32s", "decoder", "score_fr",
                    "Class scores on the coarsest grid (1/32 of the image): right about what is where, blurry "
                    "about exact outlines.", level=5),
        ]
        if self.variant <= 16:
            up = "upscore2 (score_32s x2)"
            taps += [
                TapSpec(up, "decoder", "upscore2", "The coarse class scores upsampled to 1/16 of the image size.",
                        level=4),
                TapSpec("score_pool4", "skip", "score_pool4",
                        "Class scores computed straight from pool4 (1/16 size): finer, less certain evidence.",
                        level=4, pairs_with=up),
                TapSpec("score_16s", "fusion", "score_16s",
                        "Coarse and pool4 scores added together: class scores at 1/16 of the image size.", level=4),
            ]
        if self.variant == 8:
            up = "upscore_16s (score_16s x2)"
            taps += [
                TapSpec(up, "decoder", "upscore_pool4", "The 1/16 class scores upsampled to 1/8 of the image size.",
                        level=3),
                TapSpec("score_pool3", "skip", "score_pool3",
                        "Class scores computed straight from pool3 (1/8 size): the finest detail the FCN uses.",
                        level=3, pairs_with=up),
                TapSpec("score_8s", "fusion", "score_8s",
                        "Upsampled and pool3 scores added together: class scores at 1/8 of the image size.", level=3),
            ]
        taps.append(TapSpec("logits", "logits", "output",
                            f"Class scores upsampled x{self.variant} to the image size; the highest score at each "
                            "pixel becomes its label.", level=0))
        return taps


def _builder(variant: int):
    def build(*, in_channels: int, num_classes: int, **config) -> FCN:
        return FCN(variant=variant, in_channels=in_channels, num_classes=num_classes, **config)

    return build


register("fcn32s", description="FCN-32s: VGG16, class scores at 1/32 upsampled x32 (width, fc_channels)")(_builder(32))
register("fcn16s", description="FCN-16s: FCN-32s fused with pool4 scores (width, fc_channels)")(_builder(16))
register("fcn8s", description="FCN-8s: FCN-16s fused with pool3 scores (width, fc_channels)")(_builder(8))
