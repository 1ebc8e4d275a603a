"""The image as the network sees it: channel mapping and normalisation fixed once for the whole image."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from torch import nn

# The same levels the rest of the program uses for display and for training input.
from segstudio.core.imageio import percentile_bounds
from segstudio.engine.predict import stains

DEFAULT_NORMALISATION = {"kind": "percentile", "low": 1.0, "high": 99.8}


class ModelInput:
    """The image as the network sees it, cut out region by region.

    The channel mapping and the normalisation levels are fixed once for the whole image, so every tile is
    scaled alike (per-tile percentiles would make a dim tile look as bright as a bright one) and no
    full-size float copy of the image is ever made.
    """

    def __init__(self, pixels: np.ndarray, in_channels: int, normalisation: Mapping[str, Any] | None,
                 definition: Mapping[str, Any] | None = None,
                 levels: tuple[np.ndarray | None, np.ndarray | None] | None = None):
        pixels = np.asarray(pixels)
        if pixels.ndim == 2:
            pixels = pixels[:, :, None]
        if pixels.ndim != 3:
            raise ValueError(f"expected an image of shape (H, W, C), got {pixels.shape}")
        height, width, channels = pixels.shape
        if height < 1 or width < 1 or channels < 1:
            raise ValueError(f"cannot predict an empty image of shape {pixels.shape}")
        in_channels = int(in_channels)
        if in_channels < 1:
            raise ValueError(f"in_channels must be at least 1, got {in_channels}")
        if pixels.dtype.kind not in "biuf":
            raise ValueError(f"cannot use {pixels.dtype} pixels as network input")

        definition = dict(definition or {})
        self._picked: list[int] = []
        self._stains = None
        colour_to_grey = in_channels == 1 and channels in (3, 4)
        if definition.get("kind") == "he":
            if channels < 3:
                raise ValueError(f"the model reads the hematoxylin of H&E colour images, but this image has "
                                 f"{channels} channel{'s' if channels != 1 else ''}")
            self._mode, self._source_channels = "he", 1
            self._stains = stains.separation_matrix(definition.get("stain_vectors"))
        elif definition.get("kind") == "channels" and channels > 1:
            self._picked = [int(c) for c in definition.get("channels", [])]
            if max(self._picked) >= channels:
                wanted = ", ".join(str(c + 1) for c in self._picked)
                raise ValueError(f"the model reads image channels {wanted}, but this image has {channels}")
            self._mode, self._source_channels = "pick", len(self._picked)
        elif channels == in_channels or (channels > in_channels and not colour_to_grey):
            self._mode, self._source_channels = "select", in_channels
        elif channels == 1:
            self._mode, self._source_channels = "repeat", 1
        elif in_channels == 1:
            # Colour (RGB, or RGBA whose alpha says nothing about the sample) to grey.
            self._mode, self._source_channels = "grey", 1
        else:
            raise ValueError(f"the model expects {in_channels} channels but the image has {channels}")
        self.pixels = pixels
        self.in_channels = in_channels
        self.height, self.width = height, width
        self._float_source = pixels.dtype.kind == "f"
        self._device_levels = None
        # `levels` (another ModelInput's .levels) scales a part of a larger image exactly as the whole.
        self._offset, self._scale = levels if levels is not None else self._levels(
            dict(normalisation or {"kind": "none"}))

    @property
    def levels(self) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(offset, scale) of the normalisation, to give the parts of this image the same levels."""
        return self._offset, self._scale

    def region(self, rows: slice | np.ndarray, cols: slice | np.ndarray) -> np.ndarray:
        """float32 (in_channels, h, w) network input for the given image rows and columns."""
        block = self.pixels[rows][:, cols]
        values = self._map_channels(block)
        if self._offset is not None:
            values -= self._offset
            values /= self._scale
            if self._float_source:
                np.nan_to_num(values, copy=False, nan=0.0, posinf=1.0, neginf=0.0)
            np.clip(values, 0.0, 1.0, out=values)
        elif self._float_source:
            np.nan_to_num(values, copy=False, nan=0.0)
        if self._mode == "repeat" and self.in_channels > 1:
            values = np.repeat(values, self.in_channels, axis=0)
        return values

    @property
    def scales_on_device(self) -> bool:
        """Whether raw_region() + scale_tensor() give what region() gives (channels picked or repeated,
        integer pixels): a GPU then receives the pixels as they are stored, half the bytes of float32 for
        16-bit images, and does the arithmetic itself instead of the host."""
        return self._mode in ("select", "pick", "repeat") and self.pixels.dtype.kind in "iub"

    def raw_region(self, rows: slice | np.ndarray, cols: slice | np.ndarray) -> np.ndarray:
        """(source channels, h, w) pixels as stored, for scale_tensor() to finish on the device."""
        block = self.pixels[rows][:, cols]
        picked = block[..., self._picked] if self._mode == "pick" else block[..., : self._source_channels]
        if picked.dtype == np.bool_:
            picked = picked.astype(np.uint8)
        return np.ascontiguousarray(np.moveaxis(picked, -1, 0))

    def scale_tensor(self, raw):
        """raw_region() pixels (a torch tensor (N, C, h, w) on any device) as float32 network input."""
        import torch

        values = raw.to(torch.float32)
        if self._offset is not None:
            if getattr(self, "_device_levels", None) is None or self._device_levels[0].device != values.device:
                self._device_levels = tuple(torch.from_numpy(v).to(values.device) for v in (self._offset, self._scale))
            offset, scale = self._device_levels
            values = ((values - offset) / scale).clamp_(0.0, 1.0)
        if self._mode == "repeat" and self.in_channels > 1:
            values = values.repeat(1, self.in_channels, 1, 1)
        return values

    def _map_channels(self, block: np.ndarray) -> np.ndarray:
        if self._mode == "grey":
            return block[..., :3].mean(axis=-1, dtype=np.float32)[None]
        if self._mode == "he":
            return stains.hematoxylin(block, self._stains)[None]
        if self._mode == "pick":
            return np.ascontiguousarray(np.moveaxis(block[..., self._picked], -1, 0), dtype=np.float32)
        picked = block[..., : self._source_channels]
        return np.ascontiguousarray(np.moveaxis(picked, -1, 0), dtype=np.float32)

    def _levels(self, normalisation: dict) -> tuple[np.ndarray | None, np.ndarray | None]:
        kind = normalisation.get("kind", "none")
        if kind == "none":
            return None, None
        if kind != "percentile":
            raise ValueError(f"unknown normalisation kind {kind!r} (expected 'percentile' or 'none')")
        low = float(normalisation.get("low", DEFAULT_NORMALISATION["low"]))
        high = float(normalisation.get("high", DEFAULT_NORMALISATION["high"]))
        if not 0.0 <= low < high <= 100.0:
            raise ValueError(f"percentile normalisation needs 0 <= low < high <= 100, got {low}, {high}")
        if self._mode == "grey":
            values = np.moveaxis(self._map_channels(self.pixels), 0, -1)
        elif self._mode in ("he", "pick"):
            values = np.moveaxis(self._map_channels(stains.level_sample(self.pixels)), 0, -1)
        else:
            values = self.pixels[..., : self._source_channels]
        lo, hi = (np.asarray(v, np.float64).reshape(-1) for v in percentile_bounds(values, low, high))
        # A constant channel has no contrast to stretch: keep its offset from the level unscaled.
        scale = np.where(hi > lo, hi - lo, 1.0)
        shape = (self._source_channels, 1, 1)
        return lo.astype(np.float32).reshape(shape), scale.astype(np.float32).reshape(shape)


def prepare_input(pixels: np.ndarray, in_channels: int, normalisation: Mapping[str, Any] | None,
                  definition: Mapping[str, Any] | None = None) -> np.ndarray:
    """Whole image as float32 (in_channels, H, W) network input.

    Grey images are repeated when the model wants more channels; colour becomes grey (channel mean) for
    one-channel models; extra channels beyond the model's are dropped. Normalisation is
    {"kind": "percentile", "low": 1.0, "high": 99.8} (per channel, clipped to [0, 1]) or {"kind": "none"}.
    """
    source = ModelInput(pixels, in_channels, normalisation, definition)
    return source.region(slice(None), slice(None))


def infer_in_channels(model: nn.Module) -> int:
    """Input channels of a model without metadata: its config, else its first convolution."""
    config = getattr(model, "config", None)
    if isinstance(config, Mapping) and config.get("in_channels"):
        return int(config["in_channels"])
    for module in model.modules():
        if isinstance(module, nn.modules.conv._ConvNd):
            return int(module.in_channels)
    raise ValueError("cannot tell how many input channels the model takes; pass its metadata")
