"""Reading slide and microscope images into (H, W, C) arrays, and making them visible on screen.

PNG, JPEG and BMP go through OpenCV; TIFF (8/16/32-bit, float, multi-page, multi-channel) through
tifffile. Every reader checks the image size from the file header before it allocates pixels, and
checks that the file is complete before it decodes, because both decoders will otherwise hand back
partially zero-filled images for truncated files. Every failure is an ImageReadError naming the file
and the reason.
"""
from __future__ import annotations

import io
import itertools
import logging
import math
import os
import re
import struct
import threading
import warnings
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np
import tifffile

SUPPORTED_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
_FORMAT_OF_SUFFIX = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".bmp": "bmp", ".tif": "tiff", ".tiff": "tiff"}
_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"BM", "bmp"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
    (b"II+\x00", "tiff"),  # BigTIFF
    (b"MM\x00+", "tiff"),
)

DEFAULT_MAX_PIXELS = 2**30
MAX_PIXELS_ENV = "SEGSTUDIO_MAX_PIXELS"
_OPENCV_MAX_PIXELS = 2**30  # OpenCV's own default decode limit (OPENCV_IO_MAX_IMAGE_PIXELS)

# An unnamed axis this small, next to the image plane, is taken to hold channels rather than pages.
MAX_GUESSED_CHANNELS = 8
# Percentiles are estimated from about this many pixels per channel, so big images normalise fast.
_PERCENTILE_SAMPLE_PIXELS = 1_000_000

_RGB_NAMES = ("R", "G", "B")
_RGBA_NAMES = ("R", "G", "B", "A")


class ImageReadError(ValueError):
    """An image that cannot be opened. str(e) is 'Cannot open <path>: <reason>'."""

    def __init__(self, path: os.PathLike | str, reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"Cannot open {self.path}: {reason}")

    def __reduce__(self):
        return type(self), (self.path, self.reason)


class _Corrupt(Exception):
    """Raised by the format readers; reported as 'file is truncated or corrupt (<detail>)'."""


class _Unsupported(Exception):
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


# --- public entry points --------------------------------------------------------------------------------
def probe_image(path: os.PathLike | str, *, page: int | None = None) -> ImageMeta:
    """Size, type, channels and pages from the file header alone; no pixels are read."""
    path, fmt, file_size = _checked_file(path)
    with _errors_reported_for(path):
        if fmt == "tiff":
            with _open_tiff(path) as (tif, _):
                layouts = _tiff_layouts(tif)
                layout, _index = _tiff_page(path, layouts, page)
                dtype = _tiff_output_dtype(tif.series[layout.series].dtype)
                return _tiff_meta(path, tif, layout, layouts, page, dtype, layout.channels)
        _checked_page(path, page, 1)
        with open(path, "rb") as handle:
            header = _RASTER_HEADERS[fmt](handle)
        return header.meta(path, fmt)


def read_image(
    path: os.PathLike | str,
    *,
    max_pixels: int | None = None,
    page: int | None = None,
    channels: Sequence[int] | None = None,
) -> ImageData:
    """Read one image (one page of a stack) as (H, W, C) pixels in their original dtype.

    max_pixels caps height x width (default SEGSTUDIO_MAX_PIXELS or DEFAULT_MAX_PIXELS); `channels`
    picks and orders channels by index. Raises ImageReadError for anything that cannot be read.
    """
    path, fmt, file_size = _checked_file(path)
    limit = _pixel_limit(max_pixels)
    with _errors_reported_for(path):
        if fmt == "tiff":
            return _read_tiff(path, file_size, limit, page, channels)
        return _read_raster(path, fmt, limit, page, channels)


# --- checks shared by all formats -----------------------------------------------------------------------
def _checked_file(path: os.PathLike | str) -> tuple[Path, str, int]:
    path = Path(path)
    if path.is_dir():
        raise ImageReadError(path, "it is a folder, not an image file")
    if not path.exists():
        raise ImageReadError(path, "file does not exist")
    suffix = path.suffix.lower()
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
    except _Corrupt as exc:
        raise ImageReadError(path, f"file is truncated or corrupt ({exc})") from None
    except _Unsupported as exc:
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


def _pixel_limit(max_pixels: int | None) -> int:
    if max_pixels is not None:
        return int(max_pixels)
    configured = os.environ.get(MAX_PIXELS_ENV, "").strip().replace("_", "")
    if configured.isdigit() and int(configured) > 0:
        return int(configured)
    return DEFAULT_MAX_PIXELS


def _check_pixel_count(path: Path, width: int, height: int, limit: int) -> None:
    if width <= 0 or height <= 0:
        raise _Corrupt(f"the header gives an image size of {width} x {height}")
    if width * height > limit:
        raise ImageReadError(
            path,
            f"image is {width} x {height} pixels, over the limit of {limit:,} pixels "
            f"(set {MAX_PIXELS_ENV} to allow larger images)",
        )


def _checked_page(path: Path, page: int | None, pages: int) -> int:
    page = 0 if page is None else int(page)
    if not 0 <= page < pages:
        counted = "1 page" if pages == 1 else f"{pages} pages, numbered from 0"
        raise ImageReadError(path, f"page {page} does not exist (the file has {counted})")
    return page


def _checked_channels(path: Path, channels: Sequence[int] | None, available: int) -> list[int]:
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


def _bit_depth(dtype: np.dtype) -> int:
    return 1 if dtype == bool else dtype.itemsize * 8


# --- PNG, JPEG, BMP -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _RasterHeader:
    width: int
    height: int
    channels: int  # as OpenCV will decode it
    dtype: np.dtype

    def meta(self, path: Path, fmt: str) -> ImageMeta:
        names = {3: _RGB_NAMES, 4: _RGBA_NAMES}.get(self.channels)
        return ImageMeta(path, fmt, self.dtype.name, _bit_depth(self.dtype), self.height, self.width,
                         self.channels, 1, 0, names)


def _read_exact(handle: BinaryIO, count: int, what: str) -> bytes:
    data = handle.read(count)
    if len(data) < count:
        raise _Corrupt(f"the file ends inside the {what}")
    return data


def _png_header(handle: BinaryIO) -> _RasterHeader:
    handle.seek(8)
    length, kind = struct.unpack(">I4s", _read_exact(handle, 8, "PNG header"))
    if kind != b"IHDR" or length != 13:
        raise _Corrupt("the PNG header chunk is missing")
    width, height, depth, color_type = struct.unpack(">IIBB", _read_exact(handle, 10, "PNG header"))
    if color_type not in (0, 2, 3, 4, 6) or depth not in (1, 2, 4, 8, 16):
        raise _Corrupt(f"PNG colour type {color_type} with bit depth {depth} is invalid")
    handle.seek(8 + 8 + 13 + 4)
    # Walk chunk headers up to the image data: transparency (tRNS) adds an alpha channel on decode.
    transparent = False
    while True:
        length, kind = struct.unpack(">I4s", _read_exact(handle, 8, "PNG chunks before the image data"))
        if kind == b"IDAT":
            break
        if kind == b"IEND":
            raise _Corrupt("the PNG has no image data")
        transparent |= kind == b"tRNS"
        handle.seek(length + 4, io.SEEK_CUR)
    channels = {0: 1, 2: 3, 3: 3, 4: 4, 6: 4}[color_type]
    if transparent and color_type in (2, 3):
        channels = 4
    return _RasterHeader(width, height, channels, np.dtype(np.uint16 if depth == 16 else np.uint8))


def _check_png_complete(data: bytes) -> None:
    """Every chunk present with a matching CRC, up to IEND: catches truncation and damaged bytes."""
    view = memoryview(data)
    position = 8
    while True:
        if position + 8 > len(data):
            raise _Corrupt("the PNG ends before its end marker (IEND)")
        length, kind = struct.unpack_from(">I4s", data, position)
        end = position + 8 + length + 4
        name = kind.decode("latin-1")
        if end > len(data):
            raise _Corrupt(f"the PNG is cut off inside its '{name}' chunk")
        stored_crc = struct.unpack_from(">I", data, end - 4)[0]
        if zlib.crc32(view[position + 4 : end - 4]) != stored_crc:
            raise _Corrupt(f"the PNG '{name}' chunk is damaged (checksum mismatch)")
        if kind == b"IEND":
            return
        position = end


_JPEG_FRAME_MARKERS = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_JPEG_SCAN_MARKER = 0xDA
_JPEG_END = b"\xff\xd9"


def _jpeg_segments(handle: BinaryIO) -> Iterator[tuple[int, int, int]]:
    """(marker, offset of its payload, payload length) for each header segment, up to the first scan."""
    handle.seek(2)
    while True:
        byte = _read_exact(handle, 1, "JPEG header")
        if byte != b"\xff":
            raise _Corrupt(f"JPEG marker expected at byte {handle.tell() - 1}")
        marker = _read_exact(handle, 1, "JPEG header")[0]
        while marker == 0xFF:  # fill bytes
            marker = _read_exact(handle, 1, "JPEG header")[0]
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:
            continue  # markers without a payload
        if marker == 0xD9:
            raise _Corrupt("the JPEG ends before its image data")
        (length,) = struct.unpack(">H", _read_exact(handle, 2, "JPEG header"))
        if length < 2:
            raise _Corrupt(f"JPEG segment at byte {handle.tell() - 4} has an invalid length")
        yield marker, handle.tell(), length - 2
        if marker == _JPEG_SCAN_MARKER:
            return
        handle.seek(length - 2, io.SEEK_CUR)


def _jpeg_header(handle: BinaryIO) -> _RasterHeader:
    for marker, offset, length in _jpeg_segments(handle):
        if marker in _JPEG_FRAME_MARKERS:
            handle.seek(offset)
            precision, height, width, components = struct.unpack(">BHHB", _read_exact(handle, 6, "JPEG frame header"))
            if height == 0:
                raise _Corrupt("the JPEG frame header gives no image height")
            dtype = np.dtype(np.uint16 if precision > 8 else np.uint8)
            return _RasterHeader(width, height, 1 if components == 1 else 3, dtype)
        if marker == _JPEG_SCAN_MARKER:
            break
    raise _Corrupt("the JPEG has no frame header")


def _check_jpeg_complete(data: bytes) -> None:
    # Inside compressed JPEG data every 0xFF byte is escaped, so the first FF D9 after the start of
    # the first scan is the real end-of-image marker. Data appended after it (some cameras) is fine.
    scan_start = None
    for marker, offset, _length in _jpeg_segments(io.BytesIO(data)):
        if marker == _JPEG_SCAN_MARKER:
            scan_start = offset
    if scan_start is None or data.find(_JPEG_END, scan_start) < 0:
        raise _Corrupt("the JPEG end marker (FF D9) is missing")


def _bmp_layout(handle: BinaryIO) -> tuple[_RasterHeader, int, int, int]:
    """Header, plus the pixel data offset, row stride and compression code of a BMP."""
    head = _read_exact(handle, 26, "BMP header")
    (pixel_offset,) = struct.unpack_from("<I", head, 10)
    (info_size,) = struct.unpack_from("<I", head, 14)
    if info_size == 12:  # OS/2 BITMAPCOREHEADER
        width, height, _planes, bits = struct.unpack_from("<HHHH", head, 18)
        compression, colors_used, entry_size = 0, 0, 3
    elif info_size >= 40:
        info = _read_exact(handle, 24, "BMP header")
        width, height, _planes, bits = struct.unpack_from("<iiHH", head + info, 18)
        compression, colors_used = struct.unpack_from("<I12xI", info, 4)
        entry_size = 4
    else:
        raise _Corrupt(f"unknown BMP header size {info_size}")
    if bits not in (1, 4, 8, 16, 24, 32):
        raise _Corrupt(f"BMP bit depth {bits} is invalid")
    height = abs(height)  # negative height means rows are stored top-down
    if bits <= 8:
        # OpenCV decodes a palette image as grey when every palette entry is grey.
        handle.seek(14 + info_size)
        count = colors_used or 2**bits
        palette = np.frombuffer(_read_exact(handle, count * entry_size, "BMP palette"), np.uint8)
        palette = palette.reshape(count, entry_size)[:, :3]
        channels = 1 if np.all(palette == palette[:, :1]) else 3
    else:
        channels = 4 if bits == 32 else 3
    stride = ((width * bits + 31) // 32) * 4
    return _RasterHeader(width, height, channels, np.dtype(np.uint8)), pixel_offset, stride, compression


def _bmp_header(handle: BinaryIO) -> _RasterHeader:
    return _bmp_layout(handle)[0]


def _check_bmp_complete(data: bytes) -> None:
    header, pixel_offset, stride, compression = _bmp_layout(io.BytesIO(data))
    if compression in (0, 3, 6):  # uncompressed rows (plain or bit fields): the size is known exactly
        needed = pixel_offset + stride * header.height
        if needed > len(data):
            raise _Corrupt(f"the BMP pixel data needs {needed:,} bytes but the file has {len(data):,}")


_RASTER_HEADERS = {"png": _png_header, "jpeg": _jpeg_header, "bmp": _bmp_header}
_RASTER_COMPLETENESS = {"png": _check_png_complete, "jpeg": _check_jpeg_complete, "bmp": _check_bmp_complete}


def _read_raster(path: Path, fmt: str, limit: int, page: int | None, channels: Sequence[int] | None) -> ImageData:
    _checked_page(path, page, 1)
    with open(path, "rb") as handle:
        header = _RASTER_HEADERS[fmt](handle)
        _check_pixel_count(path, header.width, header.height, limit)
        handle.seek(0)
        data = handle.read()
    _RASTER_COMPLETENESS[fmt](data)
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if decoded is None:
        if header.width * header.height > _OPENCV_MAX_PIXELS:
            raise ImageReadError(path, "image is larger than OpenCV can decode (set OPENCV_IO_MAX_IMAGE_PIXELS)")
        raise _Corrupt("the decoder could not read the pixel data")
    if decoded.shape[:2] != (header.height, header.width):
        raise _Corrupt(f"decoded size {decoded.shape[1]} x {decoded.shape[0]} differs from the header")
    pixels = _opencv_to_rgb(decoded)
    chosen = _checked_channels(path, channels, pixels.shape[2])
    names = {3: _RGB_NAMES, 4: _RGBA_NAMES}.get(pixels.shape[2])
    if channels is not None:
        pixels = np.ascontiguousarray(pixels[..., chosen])
        names = tuple(names[c] for c in chosen) if names else None
    meta = ImageMeta(path, fmt, pixels.dtype.name, _bit_depth(pixels.dtype), pixels.shape[0], pixels.shape[1],
                     pixels.shape[2], 1, 0, names)
    return ImageData(pixels, meta)


def _opencv_to_rgb(decoded: np.ndarray) -> np.ndarray:
    if decoded.ndim == 2:
        return decoded[:, :, np.newaxis]
    if decoded.shape[2] == 3:
        return cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)
    if decoded.shape[2] == 4:
        return cv2.cvtColor(decoded, cv2.COLOR_BGRA2RGBA)
    return decoded


# --- TIFF -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _TiffLayout:
    """How one tifffile series maps onto user-visible pages of (H, W, C) images.

    Axis positions refer to the series' unsqueezed shape. The leading `grid_ndim` axes enumerate the
    TIFF pages (IFDs) of the series; the others lie inside each TIFF page.
    """

    series: int
    shape: tuple[int, ...]
    grid_ndim: int
    y: int
    x: int
    c: int | None
    page_axes: tuple[int, ...]
    channel_names: tuple[str, ...] | None

    @property
    def pages(self) -> int:
        return math.prod(self.shape[a] for a in self.page_axes)

    @property
    def height(self) -> int:
        return self.shape[self.y]

    @property
    def width(self) -> int:
        return self.shape[self.x]

    @property
    def channels(self) -> int:
        return 1 if self.c is None else self.shape[self.c]


class _WarningsOfThisThread(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.thread = threading.get_ident()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            # tifffile prefixes messages with the repr of the object that complained
            self.messages.append(re.sub(r"^<[^>]*>\s*", "", record.getMessage()))


@contextmanager
def _open_tiff(path: Path) -> Iterator[tuple[tifffile.TiffFile, list[str]]]:
    """Open a TIFF and index all its pages; a damaged page list is an error, not fewer pages.

    Yields the file and the list that collects tifffile's warnings from here on (tifffile logs
    damage it works around instead of raising).
    """
    logger = logging.getLogger("tifffile")
    handler = _WarningsOfThisThread()
    logger.addHandler(handler)
    try:
        with tifffile.TiffFile(path) as tif:
            page_count = len(tif.pages)
            if handler.messages:
                raise _Corrupt(handler.messages[0])
            if page_count == 0:
                raise _Corrupt("the TIFF contains no images")
            _check_last_directory(tif)
            yield tif, handler.messages
    finally:
        logger.removeHandler(handler)


def _check_last_directory(tif: tifffile.TiffFile) -> None:
    # tifffile reads a directory chain cut short at its final pointer without complaint; a file cut
    # there has lost its end, so it is reported like any other truncation.
    last = tif.pages[-1]
    tags = getattr(last, "tags", None)
    if tags is None:
        return
    end = last.offset + tif.tiff.tagnosize + len(tags) * tif.tiff.tagsize + tif.tiff.offsetsize
    if end > tif.filehandle.size:
        raise _Corrupt("the file ends inside its last page directory")


def _tiff_layouts(tif: tifffile.TiffFile) -> list[_TiffLayout]:
    layouts = []
    for index, series in enumerate(tif.series):
        shape = tuple(int(s) for s in series.get_shape(False))
        axes = series.get_axes(False)
        grid_ndim, covered = 0, 1
        while covered < len(series) and grid_ndim < len(shape):
            covered *= shape[grid_ndim]
            grid_ndim += 1
        if series.is_truncated:  # ImageJ writes stacks over 4 GB with a single page directory
            raise _Unsupported("ImageJ hyperstacks larger than 4 GB are not supported")
        if covered != len(series):
            raise _Unsupported(f"TIFF series {index} stores its pages in a layout that is not supported")
        y, x, c = _image_axes(shape, axes)
        page_axes = tuple(i for i, size in enumerate(shape) if size > 1 and i not in (y, x, c))
        layouts.append(_TiffLayout(index, shape, grid_ndim, y, x, c, page_axes, _tiff_channel_names(series, c, shape)))
    if not layouts:
        raise _Corrupt("the TIFF contains no images")
    return layouts


def _image_axes(shape: tuple[int, ...], axes: str) -> tuple[int, int, int | None]:
    """Positions of the rows, columns and channels axes.

    Named axes win: S (samples of a pixel) or C (channels). A numpy array written without axis names
    has unnamed (Q) axes; then a small axis right before the image plane is read as channels
    (C, H, W), and a small last axis as (H, W, C), so a 5-channel stack opens as one image.
    """
    y, x = axes.rfind("Y"), axes.rfind("X")
    if y < 0 or x < 0:
        raise _Corrupt(f"TIFF axes {axes!r} have no image plane")
    others = [i for i, size in enumerate(shape) if size > 1 and i not in (y, x)]
    for name in "SC":
        named = [i for i in others if axes[i] == name]
        if named:
            return y, x, named[0]
    if len(others) == 1 and axes[others[0]] == "Q" and others[0] < y:
        axis = others[0]
        if shape[axis] <= MAX_GUESSED_CHANNELS and shape[axis] < min(shape[y], shape[x]):
            return y, x, axis
        if shape[x] <= MAX_GUESSED_CHANNELS and shape[x] < min(shape[axis], shape[y]):
            return axis, y, x
    return y, x, None


def _tiff_channel_names(series: tifffile.TiffPageSeries, c: int | None, shape: tuple[int, ...]) -> tuple[str, ...] | None:
    keyframe = series.keyframe
    if c is None or keyframe.photometric != tifffile.PHOTOMETRIC.RGB:
        return None
    if shape[c] == 3:
        return _RGB_NAMES
    alpha = (tifffile.EXTRASAMPLE.ASSOCALPHA, tifffile.EXTRASAMPLE.UNASSALPHA)
    if shape[c] == 4 and keyframe.extrasamples and keyframe.extrasamples[0] in alpha:
        return _RGBA_NAMES
    return None


def _tiff_page(path: Path, layouts: list[_TiffLayout], page: int | None) -> tuple[_TiffLayout, int]:
    """The layout holding user page `page`, and the page's index within that layout."""
    remaining = _checked_page(path, page, sum(layout.pages for layout in layouts))
    for layout in layouts:
        if remaining < layout.pages:
            return layout, remaining
        remaining -= layout.pages
    raise AssertionError("unreachable: page was checked against the total")


def _tiff_meta(path: Path, tif: tifffile.TiffFile, layout: _TiffLayout, layouts: list[_TiffLayout],
               page: int | None, dtype: np.dtype, channels: int) -> ImageMeta:
    bits = tif.series[layout.series].keyframe.bitspersample
    if not isinstance(bits, int) or bits > _bit_depth(dtype):
        bits = _bit_depth(dtype)
    return ImageMeta(path, "tiff", dtype.name, int(bits), layout.height, layout.width, channels,
                     sum(item.pages for item in layouts), page or 0, layout.channel_names)


def _tiff_output_dtype(dtype: np.dtype) -> np.dtype:
    if dtype.kind == "c":
        raise _Unsupported("complex-valued pixels are not supported")
    return np.dtype(np.uint8) if dtype == bool else np.dtype(dtype)


def _check_page_data(page: tifffile.TiffPage | tifffile.TiffFrame | None, file_size: int) -> None:
    """Refuse pages whose image data is missing or lies past the end of the file.

    tifffile fills such strips and tiles with zeros and carries on; a truncated file would then
    load as a partly black image that looks real.
    """
    if page is None:
        raise _Corrupt("a TIFF page of the image is missing")
    offsets, counts = page.dataoffsets, page.databytecounts
    if len(offsets) == 0 or len(offsets) != len(counts):
        raise _Corrupt(f"TIFF page {page.index} has no image data")
    for offset, count in zip(offsets, counts):
        if count == 0 or offset == 0:
            raise _Corrupt(f"part of the image data of TIFF page {page.index} is missing")
        if offset + count > file_size:
            raise _Corrupt(
                f"image data of TIFF page {page.index} ends at byte {offset + count:,}, "
                f"past the end of the file ({file_size:,} bytes)"
            )


def _decode_tiff_page(page: tifffile.TiffPage | tifffile.TiffFrame) -> np.ndarray:
    try:
        return page.asarray()
    except ValueError as exc:
        # LZW, JPEG and most other TIFF codecs live in the optional imagecodecs package
        if "imagecodecs" in str(exc):
            codec = page.keyframe.compression
            raise _Unsupported(f"TIFF compression {getattr(codec, 'name', codec)} needs the 'imagecodecs' "
                               "package, which is not installed") from None
        raise


def _take(array: np.ndarray, selection: Sequence[list[int] | None]) -> np.ndarray:
    for axis, chosen in enumerate(selection):
        if chosen is not None and chosen != list(range(array.shape[axis])):
            array = np.take(array, chosen, axis=axis)
    return array


def _read_tiff_plane(tif: tifffile.TiffFile, layout: _TiffLayout, index: int, channels: list[int],
                     file_size: int) -> np.ndarray:
    """Read one user page as (H, W, len(channels)), decoding only the TIFF pages it needs."""
    shape = layout.shape
    fixed = dict(zip(layout.page_axes, np.unravel_index(index, [shape[a] for a in layout.page_axes])))
    selection: list[list[int] | None] = []
    for axis in range(len(shape)):
        if axis in fixed:
            selection.append([int(fixed[axis])])
        elif axis == layout.c:
            selection.append(channels)
        elif axis in (layout.y, layout.x):
            selection.append(None)
        else:
            selection.append([0])
    grid_shape, inner_shape = shape[: layout.grid_ndim], shape[layout.grid_ndim :]
    grid_selection = [list(range(size)) if chosen is None else chosen
                      for chosen, size in zip(selection[: layout.grid_ndim], grid_shape)]
    series = tif.series[layout.series]
    blocks = []
    for position in itertools.product(*grid_selection):
        page = series[int(np.ravel_multi_index(position, grid_shape)) if position else 0]
        _check_page_data(page, file_size)
        data = _decode_tiff_page(page).reshape(inner_shape)
        blocks.append(_take(data, selection[layout.grid_ndim :]))
    if len(blocks) == 1:
        block = blocks[0].reshape([1] * layout.grid_ndim + list(blocks[0].shape))
    else:
        block = np.stack(blocks).reshape([len(s) for s in grid_selection] + list(blocks[0].shape))
    image_axes = [layout.y, layout.x] + ([layout.c] if layout.c is not None else [])
    rest = [axis for axis in range(len(shape)) if axis not in image_axes]
    block = block.transpose(rest + image_axes)
    pixels = block.reshape(layout.height, layout.width, len(channels))
    return np.ascontiguousarray(pixels.astype(_tiff_output_dtype(pixels.dtype), copy=False))


def _read_tiff(path: Path, file_size: int, limit: int, page: int | None,
               channels: Sequence[int] | None) -> ImageData:
    with _open_tiff(path) as (tif, warnings_seen):
        layouts = _tiff_layouts(tif)
        layout, index = _tiff_page(path, layouts, page)
        _check_pixel_count(path, layout.width, layout.height, limit)
        chosen = _checked_channels(path, channels, layout.channels)
        # Metadata oddities logged while parsing series are harmless; anything logged while
        # decoding pixels means the data is damaged.
        warnings_seen.clear()
        pixels = _read_tiff_plane(tif, layout, index, chosen, file_size)
        if warnings_seen:
            raise _Corrupt(warnings_seen[0])
        names = layout.channel_names
        if names is not None and channels is not None:
            names = tuple(names[c] for c in chosen)
        meta = _tiff_meta(path, tif, replace(layout, channel_names=names), layouts, page, pixels.dtype,
                          pixels.shape[2])
    return ImageData(pixels, meta)


# --- display and model-input normalisation --------------------------------------------------------------
def _strided_sample(pixels: np.ndarray) -> np.ndarray:
    height, width = pixels.shape[:2]
    step = max(1, math.ceil(math.sqrt(height * width / _PERCENTILE_SAMPLE_PIXELS)))
    return pixels[::step, ::step]


def percentile_bounds(pixels: np.ndarray, low: float = 1.0, high: float = 99.8, *,
                      per_channel: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) intensity per channel (shape (C,)), estimated on a strided subsample.

    Where the two percentiles coincide (a mostly empty channel) the channel's min and max are used,
    so sparse bright spots stay visible.
    """
    if not 0.0 <= low < high <= 100.0:
        raise ValueError(f"percentiles must satisfy 0 <= low < high <= 100, got {low} and {high}")
    array = np.asarray(pixels)
    if array.ndim == 2:
        array = array[:, :, np.newaxis]
    if array.ndim != 3:
        raise ValueError(f"expected (H, W) or (H, W, C) pixels, got shape {array.shape}")
    sample = _strided_sample(array).reshape(-1, array.shape[2] if per_channel else 1)
    if sample.dtype.kind == "f":
        sample = sample.astype(np.float64)
        sample[~np.isfinite(sample)] = np.nan
        percentile, minimum, maximum = np.nanpercentile, np.nanmin, np.nanmax
    else:  # integers hold no NaN, and the plain functions are several times faster
        sample = sample.astype(np.int64) if sample.dtype == bool else sample
        percentile, minimum, maximum = np.percentile, np.min, np.max
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN channels are handled below
        lo, hi = percentile(sample, [low, high], axis=0)
        flat = ~(hi > lo)
        if flat.any():
            lo = np.where(flat, minimum(sample, axis=0), lo)
            hi = np.where(flat, maximum(sample, axis=0), hi)
    lo = np.nan_to_num(np.asarray(lo, dtype=np.float64), nan=0.0)
    hi = np.nan_to_num(np.asarray(hi, dtype=np.float64), nan=1.0)
    if not per_channel:
        lo, hi = np.repeat(lo, array.shape[2]), np.repeat(hi, array.shape[2])
    return lo, hi


def percentile_normalize(pixels: np.ndarray, low: float = 1.0, high: float = 99.8, *,
                         per_channel: bool = True) -> np.ndarray:
    """Map the [low, high] percentile range to [0, 1] (float32, same shape, clipped).

    A dim 16-bit image (values 100..400) fills the range; NaN and infinities become 0.
    """
    array = np.asarray(pixels)
    lo, hi = percentile_bounds(array, low, high, per_channel=per_channel)
    if array.ndim == 2:
        lo, hi = lo[0], hi[0]
    inverse_range = (1.0 / np.where(hi > lo, hi - lo, 1.0)).astype(np.float32)
    out = array.astype(np.float32)
    out -= np.asarray(lo, dtype=np.float32)
    out *= inverse_range
    if array.dtype.kind == "f":
        np.nan_to_num(out, copy=False, nan=0.0, posinf=1.0, neginf=0.0)
    np.clip(out, 0.0, 1.0, out=out)
    return out


def to_display_rgb(pixels: np.ndarray, *, channels: Sequence[int] | None = None, low: float = 1.0,
                   high: float = 99.8, stretch: bool | None = None) -> np.ndarray:
    """An (H, W, 3) uint8 picture of the image for the screen.

    One channel shows as grey, two as magenta/green, three as RGB. 8-bit colour pictures
    (brightfield, H&E) are shown as they are unless stretch=True; everything else is stretched per
    channel between the low and high percentiles.
    """
    array = np.asarray(pixels)
    if array.ndim == 2:
        array = array[:, :, np.newaxis]
    if array.ndim != 3:
        raise ValueError(f"expected (H, W) or (H, W, C) pixels, got shape {array.shape}")
    available = array.shape[2]
    if channels is None:
        channels = list(range(min(available, 3)))
    channels = [int(c) for c in channels]
    if not 1 <= len(channels) <= 3 or any(not 0 <= c < available for c in channels):
        raise ValueError(f"choose 1 to 3 channels out of 0..{available - 1}, got {channels}")
    chosen = array[:, :, channels]
    if stretch is None:
        stretch = not (chosen.dtype == np.uint8 and len(channels) == 3)
    if stretch:
        scaled = percentile_normalize(chosen, low, high)
        scaled *= 255.0
        scaled += 0.5
        chosen = scaled.astype(np.uint8)
    elif chosen.dtype != np.uint8:
        chosen = np.clip(chosen, 0, 255).astype(np.uint8)
    if len(channels) == 1:
        return np.repeat(chosen, 3, axis=2)
    if len(channels) == 2:  # magenta / green: readable for red-green colour blindness
        return np.ascontiguousarray(chosen[:, :, [0, 1, 0]])
    return np.ascontiguousarray(chosen)
