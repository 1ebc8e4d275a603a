"""Reading slide and microscope images into (H, W, C) arrays: the entry points for every format.

PNG, JPEG and BMP go through OpenCV; TIFF (8/16/32-bit, float, multi-page, multi-channel) through
tifffile. Every reader checks the image size from the file header before it allocates pixels, and
checks that the file is complete before it decodes, because both decoders will otherwise hand back
partially zero-filled images for truncated files. Every failure is an ImageReadError naming the file
and the reason.
"""
from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from segstudio.core.imageio.checks import Limits
from segstudio.core.imageio.raster import probe_raster, read_raster
from segstudio.core.imageio.slide import SLIDE_SUFFIXES, Slide
from segstudio.core.imageio.tiff import probe_tiff, read_tiff, tiff_pyramid
from segstudio.core.imageio.types import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_PIXELS,
    MAX_BYTES_ENV,
    MAX_PIXELS_ENV,
    SUPPORTED_SUFFIXES,
    CorruptFile,
    ImageData,
    ImageMeta,
    ImageReadError,
    UnsupportedFeature,
)

_FORMAT_OF_SUFFIX = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".bmp": "bmp", ".tif": "tiff", ".tiff": "tiff",
                     ".svs": "tiff", ".ndpi": "tiff", ".scn": "tiff", ".bif": "tiff"}
# Slide formats that are not TIFF inside: only OpenSlide (the optional extra) reads them.
_NOT_TIFF_SLIDES = frozenset(s for s in SLIDE_SUFFIXES if s not in _FORMAT_OF_SUFFIX)
_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"BM", "bmp"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
    (b"II+\x00", "tiff"),  # BigTIFF
    (b"MM\x00+", "tiff"),
)


def probe_image(path: os.PathLike | str, *, page: int | None = None) -> ImageMeta:
    """Size, type, channels and pages from the file header alone; no pixels are read."""
    path, fmt, _file_size = _checked_file(path)
    with _errors_reported_for(path):
        if fmt == "tiff":
            return probe_tiff(path, page)
        return probe_raster(path, fmt, page)


def read_image(
    path: os.PathLike | str,
    *,
    max_pixels: int | None = None,
    page: int | None = None,
    channels: Sequence[int] | None = None,
    max_bytes: int | None = None,
) -> ImageData:
    """Read one image (one page of a stack) as (H, W, C) pixels in their original dtype.

    max_pixels caps height x width (default SEGSTUDIO_MAX_PIXELS or DEFAULT_MAX_PIXELS), max_bytes the
    decoded size (default SEGSTUDIO_MAX_DECODED_BYTES or DEFAULT_MAX_BYTES); `channels` picks and orders
    channels by index. Raises ImageReadError for anything that cannot be read.
    """
    path, fmt, file_size = _checked_file(path)
    limit = Limits(_configured(max_pixels, MAX_PIXELS_ENV, DEFAULT_MAX_PIXELS),
                   _configured(max_bytes, MAX_BYTES_ENV, DEFAULT_MAX_BYTES))
    with _errors_reported_for(path):
        if fmt == "tiff":
            return read_tiff(path, file_size, limit, page, channels)
        return read_raster(path, fmt, limit, page, channels)


def is_whole_slide(path: os.PathLike | str, *, max_pixels: int | None = None) -> bool:
    """True for files that open as a Slide: a scanner's format, a TIFF pyramid (more than one level), or a
    TIFF over the pixel cap (read a region at a time instead of refused). Reads headers only."""
    path = Path(path)
    if path.suffix.lower() in SLIDE_SUFFIXES:
        return True
    path, fmt, _file_size = _checked_file(path)
    if fmt != "tiff":
        return False
    with _errors_reported_for(path):
        levels, width, height = tiff_pyramid(path)
    return levels > 1 or width * height > _configured(max_pixels, MAX_PIXELS_ENV, DEFAULT_MAX_PIXELS)


def open_image(path: os.PathLike | str, *, max_pixels: int | None = None) -> ImageData | Slide:
    """An ordinary image read whole (read_image), or a whole-slide image opened lazily as a Slide."""
    if is_whole_slide(path, max_pixels=max_pixels):
        return Slide(path)
    return read_image(path, max_pixels=max_pixels)


# --- checks before any format reader runs -----------------------------------------------------------------------
def _checked_file(path: os.PathLike | str) -> tuple[Path, str, int]:
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise ImageReadError(path, "file does not exist") from None
    except OSError as exc:
        raise ImageReadError(path, f"file could not be read ({exc.strerror or exc})") from None
    if stat.S_ISDIR(mode):
        raise ImageReadError(path, "it is a folder, not an image file")
    if not stat.S_ISREG(mode):
        # A FIFO or device would block open() or read() forever: refuse it from its type alone.
        raise ImageReadError(path, "not a regular file (a pipe, socket or device named like an image)")
    suffix = path.suffix.lower()
    if suffix in _NOT_TIFF_SLIDES:
        raise ImageReadError(path, "this is a whole-slide format: open it as a slide")
    if suffix not in _FORMAT_OF_SUFFIX:
        shown = f"'{suffix}'" if suffix else "(no file extension)"
        raise ImageReadError(path, f"unsupported file type {shown} (supported: {', '.join(SUPPORTED_SUFFIXES)})")
    try:
        file_size = path.stat().st_size
        with open(path, "rb") as handle:
            head = handle.read(16)
    except PermissionError:
        raise ImageReadError(path, "permission denied") from None
    except OSError as exc:
        raise ImageReadError(path, f"file could not be read ({exc.strerror or exc})") from None
    if file_size == 0:
        raise ImageReadError(path, "file is empty")
    # Trust the content over the name: a .tif that is really a PNG still opens.
    for signature, fmt in _SIGNATURES:
        if head.startswith(signature):
            return path, fmt, file_size
    expected = _FORMAT_OF_SUFFIX[suffix].upper()
    raise ImageReadError(path, f"file is truncated or corrupt (it does not start like a {expected} file)")


@contextmanager
def _errors_reported_for(path: Path) -> Iterator[None]:
    """Turn whatever the decoders raise into an ImageReadError naming the file."""
    try:
        yield
    except ImageReadError:
        raise
    except CorruptFile as exc:
        raise ImageReadError(path, f"file is truncated or corrupt ({exc})") from None
    except UnsupportedFeature as exc:
        raise ImageReadError(path, str(exc)) from None
    except MemoryError:
        raise ImageReadError(path, "not enough memory to load the image") from None
    except PermissionError:
        raise ImageReadError(path, "permission denied") from None
    except OSError as exc:
        raise ImageReadError(path, f"file could not be read ({exc.strerror or exc})") from None
    except Exception as exc:  # damaged bytes can trip any exception inside a third-party parser
        detail = str(exc).strip() or type(exc).__name__
        raise ImageReadError(path, f"file is truncated or corrupt ({detail})") from None


def _configured(given: int | None, env: str, default: int) -> int:
    if given is not None:
        return int(given)
    configured = os.environ.get(env, "").strip().replace("_", "")
    if configured.isdigit() and int(configured) > 0:
        return int(configured)
    return default
