"""What reading an image gives back, and the one error every reader raises.

ImageReadError is the only error that leaves this package. The format readers signal damage and
unsupported features with CorruptFile and UnsupportedFeature; read.py turns both into an
ImageReadError that names the file.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from segstudio.core.text import printable

SUPPORTED_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff",
                                       ".svs", ".ndpi", ".scn", ".bif", ".mrxs")

DEFAULT_MAX_PIXELS = 2**30
MAX_PIXELS_ENV = "SEGSTUDIO_MAX_PIXELS"
# Pixels alone do not bound memory: 2**30 float32 pixels of 4 channels are 16 GiB. Decoded bytes are
# checked too, from the header, before decoding.
DEFAULT_MAX_BYTES = 4 * 2**30
MAX_BYTES_ENV = "SEGSTUDIO_MAX_DECODED_BYTES"

RGB_NAMES = ("R", "G", "B")
RGBA_NAMES = ("R", "G", "B", "A")


class ImageReadError(ValueError):
    """An image that cannot be opened. str(e) is 'Cannot open <path>: <reason>'."""

    def __init__(self, path: os.PathLike | str, reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"Cannot open {printable(self.path)}: {printable(reason)}")

    def __reduce__(self):
        return type(self), (self.path, self.reason)


class CorruptFile(Exception):
    """Raised by the format readers; reported as 'file is truncated or corrupt (<detail>)'."""


class UnsupportedFeature(Exception):
    """A valid file using a feature this build cannot decode; reported as is."""


@dataclass(frozen=True)
class ImageMeta:
    path: Path
    format: str  # 'png' | 'jpeg' | 'bmp' | 'tiff'
    dtype: str  # numpy name of the pixel type
    bit_depth: int  # bits per sample as stored (a TIFF may say 12 for camera data held in uint16)
    height: int
    width: int
    channels: int
    pages: int  # pages the user can choose from (TIFF stacks); 1 for everything else
    page: int
    channel_names: tuple[str, ...] | None = None
    pixel_size_um: float | None = None  # side of one pixel in micrometres, when the file says


@dataclass
class ImageData:
    pixels: np.ndarray  # always (H, W, C), original dtype, RGB(A) order for colour images
    meta: ImageMeta

    @property
    def height(self) -> int:
        return self.pixels.shape[0]

    @property
    def width(self) -> int:
        return self.pixels.shape[1]

    @property
    def channels(self) -> int:
        return self.pixels.shape[2]

    @property
    def shape(self) -> tuple[int, int]:
        return self.pixels.shape[0], self.pixels.shape[1]
