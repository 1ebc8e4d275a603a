"""Building blocks shared by the architectures: the base class (padded forward pass, the encoder it declares,
freezing), conv units, upsamplers and ImageNet-weight loading (local files only, never a download)."""
from __future__ import annotations

import logging
import math
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from segstudio.core.words import count

log = logging.getLogger(__name__)

PAD_MODES = ("reflect", "replicate", "zeros")
NORMS = ("batch", "instance", "group", "none")
# Norm layers that keep running statistics: in train mode every forward pass would update them.
_STATISTICS_NORMS = (nn.modules.batchnorm._BatchNorm, nn.modules.instancenorm._InstanceNorm)


def scaled(channels: int, width: float) -> int:
    """Channel count of a published layer at a width multiplier (never below one channel)."""
    return max(1, int(round(channels * float(width))))


def pad_to_multiple(x: torch.Tensor, multiple: int, mode: str = "reflect") -> torch.Tensor:
    """Pad bottom/right so height and width are multiples of `multiple`.

    Padding only at the far edges keeps pixel (0, 0) of the output aligned with pixel (0, 0) of the input,
    so cropping back is a plain slice. Reflection needs the pad to be smaller than the image; tiny inputs
    fall back to edge replication instead of failing.
    """
    if mode not in PAD_MODES:
        raise ValueError(f"Unknown pad mode {mode!r}; choose one of {', '.join(PAD_MODES)}")
    h, w = x.shape[-2:]
    ph = (-h) % multiple
    pw = (-w) % multiple
    if ph == 0 and pw == 0:
        return x
    if mode == "zeros":
        return F.pad(x, (0, pw, 0, ph), mode="constant", value=0.0)
    if mode == "reflect" and (ph >= h or pw >= w):
        mode = "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)


class SegmentationModel(nn.Module):
    """Base for every architecture: accepts any input size, returns logits at the input size.

    Subclasses implement `forward_padded` for inputs whose sides are multiples of `self.stride` (the
    network's total downsampling), `tap_specs`, and `encoder_modules` (their encoder, named). The input is
    padded up to that multiple and the logits are cropped back, so a 37x53 image predicts a 37x53 mask.

    The model knows its encoder, so freezing it is a method: `freeze_encoder()` turns off the encoder's
    gradients and keeps its norm layers in eval mode whenever the model trains, so their running
    statistics stay those the encoder was trained with.
    """

    arch: str = ""

    def __init__(self, *, config: dict, stride: int, pad_mode: str = "reflect"):
        super().__init__()
        if pad_mode not in PAD_MODES:
            raise ValueError(f"Unknown pad_mode {pad_mode!r}; choose one of {', '.join(PAD_MODES)}")
        self.config = dict(config)
        self.stride = int(stride)
        self.pad_mode = pad_mode
        self.in_channels = int(config["in_channels"])
        self.num_classes = int(config["num_classes"])
        # The cropped logits pass through this identity so the "logits" tap sees exactly what is returned.
        self.output = nn.Identity()
        self.encoder_frozen = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4:
            raise ValueError(f"{self.arch} expects a (N, C, H, W) tensor, got shape {tuple(x.shape)}")
        if x.shape[1] != self.in_channels:
            raise ValueError(
                f"{self.arch} was built for {count(self.in_channels, 'input channel')}, got {x.shape[1]}"
            )
        h, w = x.shape[-2:]
        logits = self.forward_padded(pad_to_multiple(x, self.stride, self.pad_mode))
        return self.output(logits[..., :h, :w])

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def tap_specs(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def encoder_modules(self) -> list[tuple[str, nn.Module]]:  # pragma: no cover - abstract
        """(dotted name, submodule) of each part of the encoder, in network order, none inside another.

        The encoder is the part that turns the image into features (what ImageNet weights initialise);
        bottlenecks, classifiers turned convolutions and everything after stay outside it.
        """
        raise NotImplementedError

    def encoder_parameters(self) -> list[nn.Parameter]:
        """The encoder's parameters, each once."""
        seen: dict[int, nn.Parameter] = {}
        for _, module in self.encoder_modules():
            for parameter in module.parameters():
                seen.setdefault(id(parameter), parameter)
        return list(seen.values())

    def freeze_encoder(self, frozen: bool = True) -> None:
        """Stop (or restart) training the encoder: its parameters get no gradients and, while frozen, its
        norm layers stay in eval mode even when the model trains, so their running statistics are kept."""
        for parameter in self.encoder_parameters():
            parameter.requires_grad_(not frozen)
        self.encoder_frozen = bool(frozen)
        self.train(self.training)

    def train(self, mode: bool = True):
        # nn.Module.train sets every submodule's mode; a wrapper's train() (DDP) reaches this override too.
        super().train(mode)
        if mode and self.encoder_frozen:
            for _, module in self.encoder_modules():
                for sub in module.modules():
                    if isinstance(sub, _STATISTICS_NORMS):
                        sub.eval()
        return self

    def first_conv(self) -> nn.Conv2d:
        """The convolution that reads the input image (used to check gradients and adapt channels)."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                return module
        raise LookupError("model has no convolution")


def norm2d(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "group":
        groups = math.gcd(channels, 32) if channels >= 8 else 1
        return nn.GroupNorm(groups, channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"Unknown norm {kind!r}; choose one of {', '.join(NORMS)}")


class ConvNormAct(nn.Sequential):
    """conv -> norm -> ReLU, the unit most stages are made of."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 3, *, dilation: int = 1, norm: str = "batch"):
        padding = dilation * (kernel_size // 2)
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel_size, padding=padding, dilation=dilation, bias=norm == "none")
        self.norm = norm2d(norm, out_ch)
        self.act = nn.ReLU()


class DoubleConv(nn.Sequential):
    """Two 3x3 conv + norm + ReLU, the U-Net level."""

    def __init__(self, in_ch: int, out_ch: int, *, norm: str = "batch"):
        super().__init__()
        self.block1 = ConvNormAct(in_ch, out_ch, 3, norm=norm)
        self.block2 = ConvNormAct(out_ch, out_ch, 3, norm=norm)


class SeparableConv(nn.Sequential):
    """Depthwise (per-channel, optionally atrous) 3x3 then pointwise 1x1: far fewer weights than a full 3x3."""

    def __init__(self, in_ch: int, out_ch: int, *, dilation: int = 1, norm: str = "batch"):
        super().__init__()
        self.depthwise = nn.Conv2d(in_ch, in_ch, 3, padding=dilation, dilation=dilation, groups=in_ch, bias=False)
        self.depthwise_norm = norm2d(norm, in_ch)
        self.depthwise_act = nn.ReLU()
        self.pointwise = nn.Conv2d(in_ch, out_ch, 1, bias=norm == "none")
        self.pointwise_norm = norm2d(norm, out_ch)
        self.pointwise_act = nn.ReLU()


def bilinear_kernel(size: int) -> torch.Tensor:
    """2-D bilinear interpolation kernel of side `size` (the FCN paper's upsampling filter)."""
    factor = (size + 1) // 2
    center = factor - 1 if size % 2 == 1 else factor - 0.5
    coords = torch.arange(size, dtype=torch.float64)
    line = 1.0 - (coords - center).abs() / factor
    return torch.outer(line, line).float()


def bilinear_upsampler(channels: int, factor: int) -> nn.ConvTranspose2d:
    """Transposed convolution upsampling by `factor`, initialised to bilinear interpolation.

    Kernel 2f, stride f, padding f/2 gives exactly f times the input size and, away from the borders, the
    same values as F.interpolate(mode="bilinear", align_corners=False); training can then refine it.
    Each class channel is upsampled on its own (zero cross-channel weights at initialisation).
    """
    if factor < 2 or factor % 2:
        raise ValueError(f"upsampling factor must be an even number >= 2, got {factor}")
    up = nn.ConvTranspose2d(channels, channels, 2 * factor, stride=factor, padding=factor // 2, bias=False)
    with torch.no_grad():
        up.weight.zero_()
        kernel = bilinear_kernel(2 * factor)
        for c in range(channels):
            up.weight[c, c] = kernel
    return up


# --- ImageNet weights: local files only ------------------------------------------------------------------

def hub_checkpoint_path(filename: str) -> Path:
    """Where torch.hub keeps a downloaded weights file (we only ever read it, never fetch it)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / filename


def resolve_pretrained(pretrained: str | bool | None, filename: str, what: str) -> Path | None:
    """Map the `pretrained_backbone` option to an existing local file, or None for random initialisation.

    True means "the torch hub cache file if it is there"; a string is a path the user chose, and a missing
    file there is an error rather than a silent fall back to random weights.
    """
    if pretrained is None or pretrained is False or pretrained == "":
        return None
    if pretrained is True:
        path = hub_checkpoint_path(filename)
        if path.is_file():
            return path
        log.info("No ImageNet weights for %s at %s; starting from random initialisation", what, path)
        return None
    path = Path(pretrained).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"Pretrained weights for {what} not found: {path}")
    return path


def load_weight_file(path: Path) -> dict[str, torch.Tensor]:
    """State dict from .safetensors or a torch file, never running pickled code."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"{path} does not hold a state dict")
    return state


def adapt_input_channels(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """RGB first-layer filters for another channel count: the mean over RGB, repeated per channel.

    A grey or fluorescence channel then responds to edges and blobs the way the mean of the colour
    responses did, which is a far better start than random filters.
    """
    if weight.shape[1] == in_channels:
        return weight
    return weight.mean(dim=1, keepdim=True).repeat(1, in_channels, 1, 1).contiguous()
