"""DeconvNet (Noh, Hong & Han 2015): a VGG16 encoder whose max-pooling remembers where each maximum was,
and a mirrored decoder that unpools to exactly those positions and then deconvolves to fill in shape."""
from __future__ import annotations

import torch
import torch.nn as nn

from segstudio.models.backbones import VGG16_STAGES, load_vgg16_pretrained, vgg16_stage_widths, vgg_stage_convs
from segstudio.models.blocks import SegmentationModel
from segstudio.models.registry import register
from segstudio.models.taps import TapSpec


def _deconv_stage(channels: list[int]) -> nn.Sequential:
    """3x3 transposed convolutions (stride 1) with batch norm and ReLU: channels[0] -> ... -> channels[-1]."""
    layers = nn.Sequential()
    for i, (c_in, c_out) in enumerate(zip(channels[:-1], channels[1:]), start=1):
        layers.add_module(f"deconv{i}", nn.ConvTranspose2d(c_in, c_out, 3, padding=1, bias=False))
        layers.add_module(f"bn{i}", nn.BatchNorm2d(c_out))
        layers.add_module(f"relu{i}", nn.ReLU())
    return layers


class DeconvNet(SegmentationModel):
    arch = "deconvnet"

    def __init__(
        self,
        *,
        in_channels: int = 3,
        num_classes: int = 2,
        width: float = 1.0,
        fc_channels: int = 4096,
        pretrained_backbone: str | bool = False,
        pad_mode: str = "reflect",
    ):
        if width <= 0 or fc_channels < 1:
            raise ValueError(f"DeconvNet width and fc_channels must be positive, got {width} and {fc_channels}")
        config = dict(in_channels=in_channels, num_classes=num_classes, width=width, fc_channels=fc_channels,
                      pretrained_backbone=pretrained_backbone, pad_mode=pad_mode)
        super().__init__(config=config, stride=32, pad_mode=pad_mode)
        widths = vgg16_stage_widths(width)
        self.widths = widths
        previous = in_channels
        for index, (channels, (_, count)) in enumerate(zip(widths, VGG16_STAGES), start=1):
            setattr(self, f"enc{index}", vgg_stage_convs(previous, channels, count, batch_norm=True))
            setattr(self, f"pool{index}", nn.MaxPool2d(2, 2, return_indices=True))
            previous = channels
        self.fc6 = nn.Sequential(nn.Conv2d(widths[4], fc_channels, 7, padding=3, bias=False),
                                 nn.BatchNorm2d(fc_channels), nn.ReLU())
        self.fc7 = nn.Sequential(nn.Conv2d(fc_channels, fc_channels, 1, bias=False),
                                 nn.BatchNorm2d(fc_channels), nn.ReLU())
        self.deconv_fc6 = nn.Sequential(nn.ConvTranspose2d(fc_channels, widths[4], 7, padding=3, bias=False),
                                        nn.BatchNorm2d(widths[4]), nn.ReLU())
        # Each decoder stage mirrors its encoder stage and ends at the channel count of the stage below it.
        for index in range(5, 0, -1):
            channels = widths[index - 1]
            count = VGG16_STAGES[index - 1][1]
            below = widths[index - 2] if index > 1 else channels
            setattr(self, f"unpool{index}", MaxUnpool2x2())
            setattr(self, f"dec{index}", _deconv_stage([channels] * count + [below]))
        self.score = nn.Conv2d(widths[0], num_classes, 1)

        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        stages = [getattr(self, f"enc{index}") for index in range(1, 6)]
        load_vgg16_pretrained(stages, pretrained_backbone, in_channels=in_channels, width=width, batch_norm=True)

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor:
        remembered = []
        for index in range(1, 6):
            x = getattr(self, f"enc{index}")(x)
            x, where = getattr(self, f"pool{index}")(x)
            remembered.append(where)
        x = self.deconv_fc6(self.fc7(self.fc6(x)))
        for index in range(5, 0, -1):
            # The sides are multiples of the stride, so each unpooled map is exactly twice the size.
            x = getattr(self, f"unpool{index}")(x, remembered[index - 1])
            x = getattr(self, f"dec{index}")(x)
        return self.score(x)

    def encoder_modules(self) -> list[tuple[str, nn.Module]]:
        # The five VGG16 convolution stages (the pools between them hold no weights); fc6/fc7 stay trainable.
        return [(f"enc{index}", getattr(self, f"enc{index}")) for index in range(1, 6)]

    def tap_specs(self) -> list[TapSpec]:
        # Stage n works at 1/2**(n-1) of the image (resolution level n - 1) and pools to level n. An unpool
        # skip carries pool n's positions, not a tensor added to another: it pairs with the decoder stage
        # that fills it in.
        taps = []
        for index, channels in enumerate(self.widths, start=1):
            taps.append(TapSpec(f"enc{index}", "encoder", f"enc{index}",
                                f"VGG16 stage {index} before pooling: {channels} feature maps at "
                                f"1/{2 ** (index - 1)} of the image size.", level=index - 1))
            taps.append(TapSpec(f"pool{index}", "encoder", f"pool{index}",
                                f"Stage {index} max-pooled to 1/{2 ** index} size; the positions of the maxima "
                                f"are remembered for unpool{index}.", level=index))
        taps += [
            TapSpec("fc6", "context", "fc6", "A 7x7 convolution over the coarsest maps: a summary of a large patch.",
                    level=5),
            TapSpec("fc7", "context", "fc7", "A 1x1 layer refining that summary.", level=5),
            TapSpec("deconv-fc6", "decoder", "deconv_fc6",
                    "The summary spread back out to the coarsest grid by a 7x7 transposed convolution.", level=5),
        ]
        for index in range(5, 0, -1):
            taps.append(TapSpec(f"unpool{index} (at pool{index} maxima)", "skip", f"unpool{index}",
                                f"Sparse maps at 1/{2 ** (index - 1)} size: each value is put back exactly where "
                                f"pool{index} found its maximum, the rest is zero. This is how object outlines "
                                "come back.", level=index - 1, pairs_with=f"dec{index}"))
            taps.append(TapSpec(f"dec{index}", "decoder", f"dec{index}",
                                f"Transposed convolutions filling the sparse unpooled maps into dense shapes "
                                f"({self.widths[index - 2] if index > 1 else self.widths[0]} maps).",
                                level=index - 1))
        taps.append(TapSpec("logits", "logits", "output",
                            "Per-class scores at every pixel; the highest score becomes the predicted label.",
                            level=0))
        return taps


class MaxUnpool2x2(nn.Module):
    """nn.MaxUnpool2d(2, 2) for maps whose pooled sides were even: each value back at the position its maximum
    came from, zeros elsewhere. Written as a scatter, because torch's own checks its output size with a call
    that the ONNX exporter cannot trace; the answer is the same (tests/models/test_deconvnet.py)."""

    def forward(self, x: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        flat = x.new_zeros((n, c, h * 2 * w * 2)).scatter(2, indices.flatten(2), x.flatten(2))
        return flat.view(n, c, h * 2, w * 2)


@register("deconvnet", description="DeconvNet: VGG16 encoder, unpooling with pooling indices + deconvolution (width)")
def build_deconvnet(*, in_channels: int, num_classes: int, **config) -> DeconvNet:
    return DeconvNet(in_channels=in_channels, num_classes=num_classes, **config)
