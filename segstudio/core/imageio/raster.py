"""PNG, JPEG and BMP through OpenCV.

The size comes from the file header before any pixels are allocated, and the file is checked for
completeness before it is decoded, because OpenCV hands back partially zero-filled images for
truncated files. Damage that only the decoder sees (a JPEG scan cut short) is reported by libjpeg as a
warning on stderr while OpenCV returns an image anyway; jpeg_warnings.py turns that warning into an error.
"""
from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np

from segstudio.core.imageio.checks import Limits, bit_depth, check_size, checked_channels, checked_page
from segstudio.core.imageio.jpeg_warnings import decoder_warnings
from segstudio.core.imageio.types import (
    RGB_NAMES,
    RGBA_NAMES,
    CorruptFile,
    ImageData,
    ImageMeta,
    ImageReadError,
)

_OPENCV_MAX_PIXELS = 2**30  # OpenCV's own default decode limit (OPENCV_IO_MAX_IMAGE_PIXELS)


@dataclass(frozen=True)
class _RasterHeader:
    width: int
    height: int
    channels: int  # as OpenCV will decode it
    dtype: np.dtype
    min_data_bytes: int = 0  # the least compressed data a complete image of this size can have

    def meta(self, path: Path, fmt: str) -> ImageMeta:
        names = {3: RGB_NAMES, 4: RGBA_NAMES}.get(self.channels)
        return ImageMeta(path, fmt, self.dtype.name, bit_depth(self.dtype), self.height, self.width,
                         self.channels, 1, 0, names)


def _read_exact(handle: BinaryIO, count: int, what: str) -> bytes:
    data = handle.read(count)
    if len(data) < count:
        raise CorruptFile(f"the file ends inside the {what}")
    return data


def _png_header(handle: BinaryIO) -> _RasterHeader:
    handle.seek(8)
    length, kind = struct.unpack(">I4s", _read_exact(handle, 8, "PNG header"))
    if kind != b"IHDR" or length != 13:
        raise CorruptFile("the PNG header chunk is missing")
    width, height, depth, color_type = struct.unpack(">IIBB", _read_exact(handle, 10, "PNG header"))
    if color_type not in (0, 2, 3, 4, 6) or depth not in (1, 2, 4, 8, 16):
        raise CorruptFile(f"PNG colour type {color_type} with bit depth {depth} is invalid")
    handle.seek(8 + 8 + 13 + 4)
    # Walk chunk headers up to the image data: transparency (tRNS) adds an alpha channel on decode.
    transparent = False
    while True:
        length, kind = struct.unpack(">I4s", _read_exact(handle, 8, "PNG chunks before the image data"))
        if kind == b"IDAT":
            break
        if kind == b"IEND":
            raise CorruptFile("the PNG has no image data")
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
            raise CorruptFile("the PNG ends before its end marker (IEND)")
        length, kind = struct.unpack_from(">I4s", data, position)
        end = position + 8 + length + 4
        name = kind.decode("latin-1")
        if end > len(data):
            raise CorruptFile(f"the PNG is cut off inside its '{name}' chunk")
        stored_crc = struct.unpack_from(">I", data, end - 4)[0]
        if zlib.crc32(view[position + 4 : end - 4]) != stored_crc:
            raise CorruptFile(f"the PNG '{name}' chunk is damaged (checksum mismatch)")
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
            raise CorruptFile(f"JPEG marker expected at byte {handle.tell() - 1}")
        marker = _read_exact(handle, 1, "JPEG header")[0]
        while marker == 0xFF:  # fill bytes
            marker = _read_exact(handle, 1, "JPEG header")[0]
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:
            continue  # markers without a payload
        if marker == 0xD9:
            raise CorruptFile("the JPEG ends before its image data")
        (length,) = struct.unpack(">H", _read_exact(handle, 2, "JPEG header"))
        if length < 2:
            raise CorruptFile(f"JPEG segment at byte {handle.tell() - 4} has an invalid length")
        yield marker, handle.tell(), length - 2
        if marker == _JPEG_SCAN_MARKER:
            return
        handle.seek(length - 2, io.SEEK_CUR)


def _jpeg_header(handle: BinaryIO) -> _RasterHeader:
    for marker, offset, _length in _jpeg_segments(handle):
        if marker in _JPEG_FRAME_MARKERS:
            handle.seek(offset)
            precision, height, width, components = struct.unpack(">BHHB", _read_exact(handle, 6, "JPEG frame header"))
            if height == 0:
                raise CorruptFile("the JPEG frame header gives no image height")
            sampling = _read_exact(handle, 3 * components, "JPEG frame header")[1::3]
            dtype = np.dtype(np.uint16 if precision > 8 else np.uint8)
            least = _jpeg_min_data_bytes(marker, width, height, sampling)
            return _RasterHeader(width, height, 1 if components == 1 else 3, dtype, least)
        if marker == _JPEG_SCAN_MARKER:
            break
    raise CorruptFile("the JPEG has no frame header")


def _jpeg_min_data_bytes(marker: int, width: int, height: int, sampling: bytes) -> int:
    """A lower bound on the entropy-coded bytes of a complete Huffman-coded JPEG of this size.

    Every 8x8 block costs at least one bit (its DC code), so a 24 KB file whose header was patched to
    32000 x 32000 cannot hold the image it claims; libjpeg would fill the rest with grey. Arithmetic
    coding (SOF9 and up) can go below a bit per block, so it gets no bound.
    """
    if marker not in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7) or not sampling:
        return 0
    h_max = max((s >> 4) or 1 for s in sampling)
    v_max = max((s & 15) or 1 for s in sampling)
    blocks = 0
    for factors in sampling:
        h, v = (factors >> 4) or 1, (factors & 15) or 1
        blocks += _ceil_div(_ceil_div(width * h, h_max), 8) * _ceil_div(_ceil_div(height * v, v_max), 8)
    return blocks // 8


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _check_jpeg_complete(data: bytes) -> None:
    # Inside compressed JPEG data every 0xFF byte is escaped, so the first FF D9 after the start of
    # the first scan is the real end-of-image marker. Data appended after it (some cameras) is fine.
    scan_start = None
    for marker, offset, _length in _jpeg_segments(io.BytesIO(data)):
        if marker == _JPEG_SCAN_MARKER:
            scan_start = offset
    if scan_start is None or data.find(_JPEG_END, scan_start) < 0:
        raise CorruptFile("the JPEG end marker (FF D9) is missing")
    header = _jpeg_header(io.BytesIO(data))
    if len(data) - scan_start < header.min_data_bytes:
        raise CorruptFile(f"the JPEG holds {len(data) - scan_start:,} bytes of image data, too few for the "
                          f"{header.width} x {header.height} pixels its header claims")


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
        raise CorruptFile(f"unknown BMP header size {info_size}")
    if bits not in (1, 4, 8, 16, 24, 32):
        raise CorruptFile(f"BMP bit depth {bits} is invalid")
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
            raise CorruptFile(f"the BMP pixel data needs {needed:,} bytes but the file has {len(data):,}")
    elif compression in (1, 2):
        _check_bmp_rle(data, pixel_offset, 8 if compression == 1 else 4, header.height)


def _check_bmp_rle(data: bytes, position: int, bits: int, height: int) -> None:
    """Walk an RLE8/RLE4 stream to its end-of-bitmap code, counting rows.

    OpenCV fills the rows a cut-off stream never reached and returns the image as if it were whole, so a
    stream that runs out of bytes, or ends before its last row, is refused. That also stops a 1 KB file
    whose header claims 30000 rows from loading as gigabytes of black.
    """
    end, row = len(data), 0
    while position + 2 <= end:
        count, value = data[position], data[position + 1]
        position += 2
        if count:
            continue  # an encoded run
        if value == 0:
            row += 1  # end of line
        elif value == 1:
            if row < height - 1:
                raise CorruptFile(f"the BMP's compressed pixel data stops after row {row} of {height}")
            return
        elif value == 2:
            if position + 2 > end:
                break
            row += data[position + 1]  # delta: skip right and down
            position += 2
        else:  # absolute run of `value` pixels, padded to an even byte count
            size = value if bits == 8 else (value + 1) // 2
            position += size + (size & 1)
    raise CorruptFile("the BMP's compressed pixel data ends before its end-of-bitmap code (the file is cut off)")


_RASTER_HEADERS = {"png": _png_header, "jpeg": _jpeg_header, "bmp": _bmp_header}
_RASTER_COMPLETENESS = {"png": _check_png_complete, "jpeg": _check_jpeg_complete, "bmp": _check_bmp_complete}


def probe_raster(path: Path, fmt: str, page: int | None) -> ImageMeta:
    """Size, type and channels from the header alone."""
    checked_page(path, page, 1)
    with open(path, "rb") as handle:
        header = _RASTER_HEADERS[fmt](handle)
    return header.meta(path, fmt)


def _decode(data: bytes, fmt: str) -> np.ndarray | None:
    if fmt != "jpeg":
        return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    with decoder_warnings() as warnings:
        decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if warnings:
        raise CorruptFile(f"the decoder reports damaged data: {warnings[0]}")
    return decoded


def read_raster(path: Path, fmt: str, limits: Limits, page: int | None,
                channels: Sequence[int] | None) -> ImageData:
    checked_page(path, page, 1)
    with open(path, "rb") as handle:
        header = _RASTER_HEADERS[fmt](handle)
        # The limit is on the pixels the caller receives (the colour conversion briefly holds a copy).
        check_size(path, header.width, header.height, header.channels, header.dtype.itemsize, limits)
        handle.seek(0)
        data = handle.read()
    _RASTER_COMPLETENESS[fmt](data)
    decoded = _decode(data, fmt)
    if decoded is None:
        if header.width * header.height > _OPENCV_MAX_PIXELS:
            raise ImageReadError(path, "image is too large: larger than OpenCV can decode "
                                       "(set OPENCV_IO_MAX_IMAGE_PIXELS)")
        raise CorruptFile("the decoder could not read the pixel data")
    if decoded.shape[:2] != (header.height, header.width):
        raise CorruptFile(f"decoded size {decoded.shape[1]} x {decoded.shape[0]} differs from the header")
    pixels = _opencv_to_rgb(decoded)
    chosen = checked_channels(path, channels, pixels.shape[2])
    names = {3: RGB_NAMES, 4: RGBA_NAMES}.get(pixels.shape[2])
    if channels is not None:
        pixels = np.ascontiguousarray(pixels[..., chosen])
        names = tuple(names[c] for c in chosen) if names else None
    meta = ImageMeta(path, fmt, pixels.dtype.name, bit_depth(pixels.dtype), pixels.shape[0], pixels.shape[1],
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
