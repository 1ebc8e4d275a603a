"""Checks every format reader makes before it decodes.

The image size from the header against the pixel and decoded-byte limits, and the chosen page and
channels against what the file holds.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from segstudio.core.imageio.types import MAX_BYTES_ENV, MAX_PIXELS_ENV, CorruptFile, ImageReadError


@dataclass(frozen=True)
class Limits:
    """What one read may allocate: height x width, and the bytes of the decoded pixels."""

    pixels: int
    bytes: int


def check_pixel_count(path: Path, width: int, height: int, limit: int) -> None:
    if width <= 0 or height <= 0:
        raise CorruptFile(f"the header gives an image size of {width} x {height}")
    if width * height > limit:
        raise ImageReadError(
            path,
            f"image is {width} x {height} pixels, over the limit of {limit:,} pixels "
            f"(set {MAX_PIXELS_ENV} to allow larger images)",
        )


def check_size(path: Path, width: int, height: int, channels: int, itemsize: int, limits: Limits,
               pages: int = 1) -> None:
    """Refuse, from header values, an image whose decoded pixels would pass either limit.

    Too large is reported as too large (an ImageReadError naming the limit), never as damage.
    """
    check_pixel_count(path, width, height, limits.pixels)
    decoded = width * height * max(int(channels), 1) * max(int(itemsize), 1) * max(int(pages), 1)
    if decoded > limits.bytes:
        raise ImageReadError(
            path,
            f"image is too large: {width} x {height} pixels x {channels} channel(s) x {itemsize} byte(s) "
            f"would take {decoded / 2**30:,.1f} GiB decoded, over the limit of {limits.bytes / 2**30:,.1f} GiB "
            f"(set {MAX_BYTES_ENV} to allow more)",
        )


def checked_page(path: Path, page: int | None, pages: int) -> int:
    page = 0 if page is None else int(page)
    if not 0 <= page < pages:
        counted = "1 page" if pages == 1 else f"{pages} pages, numbered from 0"
        raise ImageReadError(path, f"page {page} does not exist (the file has {counted})")
    return page


def checked_channels(path: Path, channels: Sequence[int] | None, available: int) -> list[int]:
    if channels is None:
        return list(range(available))
    chosen = [int(c) for c in channels]
    if not chosen:
        raise ImageReadError(path, "no channels were chosen")
    for channel in chosen:
        if not 0 <= channel < available:
            raise ImageReadError(
                path, f"channel {channel} does not exist (the image has {available}, numbered from 0)"
            )
    return chosen


def bit_depth(dtype: np.dtype) -> int:
    return 1 if np.dtype(dtype) == np.dtype(bool) else dtype.itemsize * 8
