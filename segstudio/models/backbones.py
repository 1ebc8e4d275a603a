"""ImageNet-style backbones with named stages and a width multiplier.

torchvision's VGG16 and ResNets cannot be built narrower, and its BasicBlock (ResNet-18/34) refuses
dilation. The published sizes therefore use torchvision where it can build them (ResNet-50) and
key-compatible local definitions otherwise, so torchvision's ImageNet weight files load into either.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn as nn

from segstudio.models.blocks import (
    adapt_input_channels,
    hub_checkpoint_path,
    load_weight_file,
    resolve_pretrained,
    scaled,
)

log = logging.getLogger(__name__)

# (channels, convolutions) per VGG16 stage; every stage ends in a 2x2 max-pool.
VGG16_STAGES = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))


def weight_filenames(enum_name: str) -> list[str]:
    """torch hub file names of a torchvision weights enum, the default one first."""
    import torchvision.models as tvm

    enum = getattr(tvm, enum_name)
    default = enum.DEFAULT
    members = [default] + [member for member in enum if member is not default]
    return [member.url.rsplit("/", 1)[-1] for member in members]


def resolve_any(pretrained, filenames: list[str], what: str) -> Path | None:
    """Like resolve_pretrained, but True accepts any of several hub file names (default recipe first)."""
    if pretrained is True:
        for name in filenames:
            path = hub_checkpoint_path(name)
            if path.is_file():
                return path
        log.info("No ImageNet weights for %s in %s (looked for %s); starting from random initialisation",
                 what, hub_checkpoint_path("").parent, ", ".join(filenames))
        return None
    return resolve_pretrained(pretrained, filenames[0], what)


# --- VGG16 ------------------------------------------------------------------------------------------------

def vgg_stage_convs(in_ch: int, out_ch: int, count: int, *, batch_norm: bool) -> nn.Sequential:
    """The convolutions of one VGG stage (3x3, padding 1), optionally with batch norm as in vgg16_bn."""
    layers = nn.Sequential()
    for i in range(1, count + 1):
        layers.add_module(f"conv{i}", nn.Conv2d(in_ch if i == 1 else out_ch, out_ch, 3, padding=1))
        if batch_norm:
            layers.add_module(f"bn{i}", nn.BatchNorm2d(out_ch))
        layers.add_module(f"relu{i}", nn.ReLU())
    return layers


def vgg16_stage_widths(width: float) -> list[int]:
    return [scaled(channels, width) for channels, _ in VGG16_STAGES]


def load_vgg16_features(stages: Sequence[nn.Module], state: dict[str, torch.Tensor], *, in_channels: int) -> None:
    """Copy torchvision `features.N.*` weights into the convolutions (and norms) of the five stages, in order."""
    convs = [m for stage in stages for m in stage.modules() if isinstance(m, nn.Conv2d)]
    norms = [m for stage in stages for m in stage.modules() if isinstance(m, nn.BatchNorm2d)]
    indices = sorted({int(k.split(".")[1]) for k in state if k.startswith("features.")})
    tv_convs = [i for i in indices if state[f"features.{i}.weight"].ndim == 4]
    tv_norms = [i for i in indices if f"features.{i}.running_mean" in state]
    if len(tv_convs) != len(convs) or len(tv_norms) != len(norms):
        raise ValueError(
            f"VGG16 weights do not fit: file has {len(tv_convs)} convolutions and {len(tv_norms)} norms, "
            f"the network {len(convs)} and {len(norms)}"
        )
    with torch.no_grad():
        for n, (index, conv) in enumerate(zip(tv_convs, convs)):
            weight = state[f"features.{index}.weight"]
            if n == 0:
                weight = adapt_input_channels(weight, in_channels)
            conv.weight.copy_(weight)
            conv.bias.copy_(state[f"features.{index}.bias"])
        for index, norm in zip(tv_norms, norms):
            for name in ("weight", "bias", "running_mean", "running_var"):
                getattr(norm, name).copy_(state[f"features.{index}.{name}"])


def load_vgg16_pretrained(stages: Sequence[nn.Module], pretrained, *, in_channels: int, width: float,
                          batch_norm: bool) -> dict[str, torch.Tensor] | None:
    """Load ImageNet VGG16 feature weights into the stages when asked and possible; return the state dict
    (its classifier may be reused) or None."""
    if not pretrained:
        return None
    what = "VGG16-BN" if batch_norm else "VGG16"
    path = resolve_any(pretrained, weight_filenames("VGG16_BN_Weights" if batch_norm else "VGG16_Weights"), what)
    if path is None:
        return None
    if width != 1.0:
        log.info("%s ImageNet weights need width 1.0 (got %s); starting from random initialisation", what, width)
        return None
    state = load_weight_file(path)
    try:
        load_vgg16_features(stages, state, in_channels=in_channels)
    except (KeyError, ValueError, RuntimeError) as exc:
        raise ValueError(f"{path} does not hold {what} ImageNet weights: {exc}") from exc
    log.info("Loaded %s ImageNet weights from %s", what, path)
    return state


def _conv_from_linear(linear: nn.Linear, kernel_size: int, padding: int) -> nn.Conv2d:
    area = kernel_size * kernel_size
    if linear.in_features % area:
        raise ValueError(f"{linear} has {linear.in_features} inputs, not a multiple of {kernel_size}x{kernel_size}")
    channels = linear.in_features // area
    # Built on the meta device and filled by assignment: no random initialisation of 100M weights to discard.
    conv = nn.Conv2d(channels, linear.out_features, kernel_size, padding=padding, device="meta")
    # torch.flatten of (C, H, W) puts channel outermost, so each row reshapes straight to (C, k, k).
    weight = linear.weight.detach().reshape(linear.out_features, channels, kernel_size, kernel_size)
    conv.load_state_dict({"weight": weight.clone(), "bias": linear.bias.detach().clone()}, assign=True)
    return conv


def convolutionalize_classifier(fc6: nn.Linear, fc7: nn.Linear, fc8: nn.Linear | None = None, *,
                                kernel_size: int = 7, fc6_padding: int = 0) -> tuple[nn.Conv2d, ...]:
    """Turn VGG's fully connected classifier into convolutions computing the same numbers.

    fc6 reads a flattened (C, 7, 7) block, so it is exactly a 7x7 convolution over C channels; fc7 and fc8
    read vectors, so they are 1x1 convolutions. Slid over a larger feature map the network then scores
    every position at once - the step from classification network to FCN. With `fc6_padding=0` a 7x7
    feature map gives a 1x1 output equal to the classifier's; FCN uses padding 3 to keep the 1/32 grid.
    """
    convs = [_conv_from_linear(fc6, kernel_size, fc6_padding), _conv_from_linear(fc7, 1, 0)]
    if fc8 is not None:
        convs.append(_conv_from_linear(fc8, 1, 0))
    return tuple(convs)


# --- ResNet -----------------------------------------------------------------------------------------------

RESNET_LAYOUTS = {"resnet18": ("basic", (2, 2, 2, 2)), "resnet34": ("basic", (3, 4, 6, 3)),
                  "resnet50": ("bottleneck", (3, 4, 6, 3))}


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 dilation: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 dilation: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU()
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


def dilation_plan(output_stride: int) -> tuple[bool, bool, bool]:
    """Which of layer2..layer4 trade their stride for dilation to reach the requested output stride."""
    plans = {8: (False, True, True), 16: (False, False, True), 32: (False, False, False)}
    if output_stride not in plans:
        raise ValueError(f"output_stride must be 8, 16 or 32, got {output_stride}")
    return plans[output_stride]


class ResNetBackbone(nn.Module):
    """ResNet stem and four stages with torchvision's attribute names; returns every stage's output."""

    def __init__(self, *, conv1, bn1, relu, maxpool, layer1, layer2, layer3, layer4, channels: dict[str, int]):
        super().__init__()
        self.conv1, self.bn1, self.relu, self.maxpool = conv1, bn1, relu, maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = layer1, layer2, layer3, layer4
        self.channels = dict(channels)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        stem = self.relu(self.bn1(self.conv1(x)))
        out = {"stem": stem}
        x = self.maxpool(stem)
        for name in ("layer1", "layer2", "layer3", "layer4"):
            x = getattr(self, name)(x)
            out[name] = x
        return out


def _local_resnet(block: type, counts, *, width: float, in_channels: int, dilate: tuple[bool, bool, bool]):
    stem = scaled(64, width)
    conv1 = nn.Conv2d(in_channels, stem, 7, stride=2, padding=3, bias=False)
    inplanes = stem
    dilation = 1
    layers = []
    for index, (planes, count) in enumerate(zip((64, 128, 256, 512), counts)):
        planes = scaled(planes, width)
        stride = 1 if index == 0 else 2
        previous_dilation = dilation
        if index > 0 and dilate[index - 1]:
            dilation *= stride
            stride = 1
        downsample = None
        if stride != 1 or inplanes != planes * block.expansion:
            downsample = nn.Sequential(nn.Conv2d(inplanes, planes * block.expansion, 1, stride=stride, bias=False),
                                       nn.BatchNorm2d(planes * block.expansion))
        blocks = [block(inplanes, planes, stride, downsample, previous_dilation)]
        inplanes = planes * block.expansion
        blocks += [block(inplanes, planes, dilation=dilation) for _ in range(1, count)]
        layers.append(nn.Sequential(*blocks))
    channels = {"stem": stem}
    for name, layer in zip(("layer1", "layer2", "layer3", "layer4"), layers):
        channels[name] = layer[-1].bn2.num_features if block is BasicBlock else layer[-1].bn3.num_features
    backbone = ResNetBackbone(conv1=conv1, bn1=nn.BatchNorm2d(stem), relu=nn.ReLU(),
                              maxpool=nn.MaxPool2d(3, stride=2, padding=1), layer1=layers[0], layer2=layers[1],
                              layer3=layers[2], layer4=layers[3], channels=channels)
    for module in backbone.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
    return backbone


def _torchvision_resnet(name: str, *, in_channels: int, dilate: tuple[bool, bool, bool]) -> ResNetBackbone:
    import torchvision.models as tvm

    tv = getattr(tvm, name)(weights=None, replace_stride_with_dilation=list(dilate))
    if in_channels != 3:
        tv.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        nn.init.kaiming_normal_(tv.conv1.weight, mode="fan_out", nonlinearity="relu")
    channels = {"stem": 64, "layer1": 256, "layer2": 512, "layer3": 1024, "layer4": 2048}
    return ResNetBackbone(conv1=tv.conv1, bn1=tv.bn1, relu=tv.relu, maxpool=tv.maxpool, layer1=tv.layer1,
                          layer2=tv.layer2, layer3=tv.layer3, layer4=tv.layer4, channels=channels)


def build_resnet_backbone(name: str = "resnet50", *, width: float = 1.0, in_channels: int = 3,
                          output_stride: int = 8, pretrained=False) -> ResNetBackbone:
    """A dilated ResNet whose layer4 output is at 1/output_stride of the input."""
    if name not in RESNET_LAYOUTS:
        raise ValueError(f"Unknown backbone {name!r}; choose one of {', '.join(RESNET_LAYOUTS)}")
    if width <= 0:
        raise ValueError(f"width must be positive, got {width}")
    kind, counts = RESNET_LAYOUTS[name]
    dilate = dilation_plan(output_stride)
    if width == 1.0 and kind == "bottleneck":
        backbone = _torchvision_resnet(name, in_channels=in_channels, dilate=dilate)
    else:
        block = BasicBlock if kind == "basic" else Bottleneck
        backbone = _local_resnet(block, counts, width=width, in_channels=in_channels, dilate=dilate)
    if pretrained:
        load_resnet_pretrained(backbone, name, pretrained, width=width, in_channels=in_channels)
    return backbone


def load_resnet_pretrained(backbone: ResNetBackbone, name: str, pretrained, *, width: float,
                           in_channels: int) -> bool:
    what = name
    enum_name = {"resnet18": "ResNet18_Weights", "resnet34": "ResNet34_Weights", "resnet50": "ResNet50_Weights"}[name]
    path = resolve_any(pretrained, weight_filenames(enum_name), what)
    if path is None:
        return False
    if width != 1.0:
        log.info("%s ImageNet weights need width 1.0 (got %s); starting from random initialisation", what, width)
        return False
    state = {k: v for k, v in load_weight_file(path).items() if not k.startswith("fc.")}
    try:
        state["conv1.weight"] = adapt_input_channels(state["conv1.weight"], in_channels)
        backbone.load_state_dict(state, strict=True)
    except (KeyError, RuntimeError) as exc:
        raise ValueError(f"{path} does not hold {what} ImageNet weights: {exc}") from exc
    log.info("Loaded %s ImageNet weights from %s", what, path)
    return True


# Which torchvision weights an architecture's encoder would start from ("ImageNet" starts).
_IMAGENET_ENUMS = {"fcn8s": "VGG16_Weights", "fcn16s": "VGG16_Weights", "fcn32s": "VGG16_Weights",
                   "deconvnet": "VGG16_BN_Weights", "pspnet": "ResNet50_Weights", "deeplabv3plus": "ResNet50_Weights"}


def imagenet_weights_available(arch: str) -> Path | None:
    """The local ImageNet weights file the architecture's encoder can start from, or None (never downloads)."""
    enum_name = _IMAGENET_ENUMS.get(arch)
    if enum_name is None:
        return None
    for name in weight_filenames(enum_name):
        path = hub_checkpoint_path(name)
        if path.is_file():
            return path
    return None
