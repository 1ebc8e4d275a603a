"""TIFF (8/16/32-bit, float, multi-page, multi-channel) through tifffile.

Pages and channels are mapped from tifffile's series onto user-visible pages of (H, W, C) images.
The size (pixels and decoded bytes) is checked before any pixels are read, and image data lying past
the end of the file is refused, because tifffile fills missing strips with zeros and carries on.
Palette images get their colour map applied: tifffile returns the raw indices.
"""
from __future__ import annotations

import itertools
import logging
import math
import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import tifffile

from segstudio.core.imageio.checks import Limits, bit_depth, check_size, checked_channels, checked_page
from segstudio.core.imageio.pixel_size import tiff_pixel_size_um
from segstudio.core.imageio.types import (
    RGB_NAMES,
    RGBA_NAMES,
    CorruptFile,
    ImageData,
    ImageMeta,
    UnsupportedFeature,
)

# An unnamed axis this small, next to the image plane, is taken to hold channels rather than pages.
MAX_GUESSED_CHANNELS = 8


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
    colormap: np.ndarray | None = None  # (3, 2**bits) for palette images, applied after decoding

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
        if self.colormap is not None:
            return 3
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
                raise CorruptFile(handler.messages[0])
            if page_count == 0:
                raise CorruptFile("the TIFF contains no images")
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
        raise CorruptFile("the file ends inside its last page directory")


# Series a slide scanner stores beside the image (SVS, NDPI...): shown as associated images, not pages.
ASSOCIATED_SERIES = frozenset({"thumbnail", "label", "macro", "overview"})


def is_associated(series: tifffile.TiffPageSeries, index: int) -> bool:
    return index > 0 and (series.name or "").lower() in ASSOCIATED_SERIES


def _tiff_layouts(tif: tifffile.TiffFile) -> list[_TiffLayout]:
    layouts = []
    for index, series in enumerate(tif.series):
        if is_associated(series, index):
            continue
        shape = tuple(int(s) for s in series.get_shape(False))
        axes = series.get_axes(False)
        grid_ndim, covered = 0, 1
        while covered < len(series) and grid_ndim < len(shape):
            covered *= shape[grid_ndim]
            grid_ndim += 1
        if series.is_truncated:  # ImageJ writes stacks over 4 GB with a single page directory
            raise UnsupportedFeature("ImageJ hyperstacks larger than 4 GB are not supported")
        if covered != len(series):
            raise UnsupportedFeature(f"TIFF series {index} stores its pages in a layout that is not supported")
        y, x, c = _image_axes(shape, axes)
        page_axes = tuple(i for i, size in enumerate(shape) if size > 1 and i not in (y, x, c))
        colormap = _palette(series) if c is None else None
        names = RGB_NAMES if colormap is not None else _tiff_channel_names(series, c, shape)
        layouts.append(_TiffLayout(index, shape, grid_ndim, y, x, c, page_axes, names, colormap))
    if not layouts:
        raise CorruptFile("the TIFF contains no images")
    return layouts


def _image_axes(shape: tuple[int, ...], axes: str) -> tuple[int, int, int | None]:
    """Positions of the rows, columns and channels axes.

    Named axes win: S (samples of a pixel) or C (channels). A numpy array written without axis names
    has unnamed (Q) axes; then a small axis right before the image plane is read as channels
    (C, H, W), and a small last axis as (H, W, C), so a 5-channel stack opens as one image.
    """
    y, x = axes.rfind("Y"), axes.rfind("X")
    if y < 0 or x < 0:
        raise CorruptFile(f"TIFF axes {axes!r} have no image plane")
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


def _palette(series: tifffile.TiffPageSeries) -> np.ndarray | None:
    """The colour map of a palette image, as uint8 when every entry is an 8-bit value scaled by 257."""
    keyframe = series.keyframe
    if keyframe.photometric != tifffile.PHOTOMETRIC.PALETTE:
        return None
    colormap = keyframe.colormap
    if colormap is None or colormap.ndim != 2 or colormap.shape[0] != 3:
        raise CorruptFile("the palette image has no usable colour map")
    colormap = np.asarray(colormap, dtype=np.uint16)
    if np.all(colormap % 257 == 0):
        return (colormap // 257).astype(np.uint8)
    return colormap


def _apply_colormap(indices: np.ndarray, colormap: np.ndarray) -> np.ndarray:
    plane = indices.reshape(indices.shape[0], indices.shape[1])
    if plane.dtype.kind not in "ub":
        raise CorruptFile(f"palette indices of type {plane.dtype} are not supported")
    if plane.size and int(plane.max()) >= colormap.shape[1]:
        raise CorruptFile(f"a palette index ({int(plane.max())}) is past the end of the colour map "
                          f"({colormap.shape[1]} entries)")
    return np.ascontiguousarray(colormap.T[plane.astype(np.intp)])


def _tiff_channel_names(series: tifffile.TiffPageSeries, c: int | None,
                        shape: tuple[int, ...]) -> tuple[str, ...] | None:
    if c is None:
        return None
    keyframe = series.keyframe
    if keyframe.photometric == tifffile.PHOTOMETRIC.RGB:
        if shape[c] == 3:
            return RGB_NAMES
        alpha = (tifffile.EXTRASAMPLE.ASSOCALPHA, tifffile.EXTRASAMPLE.UNASSALPHA)
        if shape[c] == 4 and keyframe.extrasamples and keyframe.extrasamples[0] in alpha:
            return RGBA_NAMES
        return None
    # Fluorescence stacks name their channels (DAPI, GFP...) in OME-XML or in ImageJ's labels; the names
    # let Predict pick the nuclear stain for a nuclei model. Metadata that does not fit is ignored.
    return _ome_channel_names(series, shape[c]) or _imagej_channel_names(series, shape[c])


def _ome_channel_names(series: tifffile.TiffPageSeries, count: int) -> tuple[str, ...] | None:
    tif = series.parent
    if not tif.is_ome or not tif.ome_metadata:
        return None
    try:
        images = tifffile.xml2dict(tif.ome_metadata)["OME"]["Image"]
        image = images[series.index] if isinstance(images, list) else images
        channels = image["Pixels"]["Channel"]
    except (KeyError, IndexError, TypeError, ValueError):  # OME-XML from many writers: take what is there
        return None
    channels = channels if isinstance(channels, list) else [channels]
    names = [str(ch.get("Name", "")).strip() if isinstance(ch, dict) else "" for ch in channels]
    return tuple(names) if len(names) == count and all(names) else None


def _imagej_channel_names(series: tifffile.TiffPageSeries, count: int) -> tuple[str, ...] | None:
    labels = (series.parent.imagej_metadata or {}).get("Labels") if series.parent.is_imagej else None
    if not isinstance(labels, (list, tuple)) or len(labels) < count:
        return None
    names = [str(label).strip() for label in labels[:count]]  # channels vary fastest in ImageJ's order
    return tuple(names) if all(names) else None


def _tiff_page(path: Path, layouts: list[_TiffLayout], page: int | None) -> tuple[_TiffLayout, int]:
    """The layout holding user page `page`, and the page's index within that layout."""
    remaining = checked_page(path, page, sum(layout.pages for layout in layouts))
    for layout in layouts:
        if remaining < layout.pages:
            return layout, remaining
        remaining -= layout.pages
    raise AssertionError("unreachable: page was checked against the total")


def _tiff_meta(path: Path, tif: tifffile.TiffFile, layout: _TiffLayout, layouts: list[_TiffLayout],
               page: int | None, dtype: np.dtype, channels: int) -> ImageMeta:
    bits = tif.series[layout.series].keyframe.bitspersample
    if not isinstance(bits, int) or bits > bit_depth(dtype):
        bits = bit_depth(dtype)
    return ImageMeta(path, "tiff", dtype.name, int(bits), layout.height, layout.width, channels,
                     sum(item.pages for item in layouts), page or 0, layout.channel_names,
                     tiff_pixel_size_um(tif, tif.series[layout.series].keyframe))


def _tiff_output_dtype(dtype: np.dtype) -> np.dtype:
    if dtype.kind == "c":
        raise UnsupportedFeature("complex-valued pixels are not supported")
    return np.dtype(np.uint8) if np.dtype(dtype) == np.dtype(bool) else np.dtype(dtype)


def _check_page_data(page: tifffile.TiffPage | tifffile.TiffFrame | None, file_size: int) -> None:
    """Refuse pages whose image data is missing or lies past the end of the file.

    tifffile fills such strips and tiles with zeros and carries on; a truncated file would then
    load as a partly black image that looks real.
    """
    if page is None:
        raise CorruptFile("a TIFF page of the image is missing")
    offsets, counts = page.dataoffsets, page.databytecounts
    if len(offsets) == 0 or len(offsets) != len(counts):
        raise CorruptFile(f"TIFF page {page.index} has no image data")
    for offset, count in zip(offsets, counts):
        if count == 0 or offset == 0:
            raise CorruptFile(f"part of the image data of TIFF page {page.index} is missing")
        if offset + count > file_size:
            raise CorruptFile(
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
            raise UnsupportedFeature(f"TIFF compression {getattr(codec, 'name', codec)} needs the 'imagecodecs' "
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


def _read_checked(path: Path, tif: tifffile.TiffFile, layout: _TiffLayout, index: int, chosen: list[int],
                  file_size: int, limits: Limits) -> np.ndarray:
    stored = np.dtype(tif.series[layout.series].dtype)
    # A page's every sample is decoded, whichever channels are chosen, so all of them count.
    check_size(path, layout.width, layout.height, layout.channels, stored.itemsize, limits)
    if layout.colormap is None:
        return _read_tiff_plane(tif, layout, index, chosen, file_size)
    indices = _read_tiff_plane(tif, layout, index, [0], file_size)
    return np.ascontiguousarray(_apply_colormap(indices, layout.colormap)[:, :, chosen])


def read_tiff(path: Path, file_size: int, limits: Limits, page: int | None,
              channels: Sequence[int] | None) -> ImageData:
    with _open_tiff(path) as (tif, warnings_seen):
        layouts = _tiff_layouts(tif)
        layout, index = _tiff_page(path, layouts, page)
        chosen = checked_channels(path, channels, layout.channels)
        # Metadata oddities logged while parsing series are harmless; anything logged while
        # decoding pixels means the data is damaged.
        warnings_seen.clear()
        pixels = _read_checked(path, tif, layout, index, chosen, file_size, limits)
        if warnings_seen:
            raise CorruptFile(warnings_seen[0])
        names = layout.channel_names
        if names is not None and channels is not None:
            names = tuple(names[c] for c in chosen)
        meta = _tiff_meta(path, tif, replace(layout, channel_names=names), layouts, page, pixels.dtype,
                          pixels.shape[2])
    return ImageData(pixels, meta)


def probe_tiff(path: Path, page: int | None) -> ImageMeta:
    """Size, type, channels and pages from the page directories alone; no pixels are read."""
    with _open_tiff(path) as (tif, _):
        layouts = _tiff_layouts(tif)
        layout, _index = _tiff_page(path, layouts, page)
        dtype = _tiff_output_dtype(tif.series[layout.series].dtype)
        if layout.colormap is not None:
            dtype = layout.colormap.dtype
        return _tiff_meta(path, tif, layout, layouts, page, dtype, layout.channels)


def tiff_pyramid(path: Path) -> tuple[int, int, int]:
    """(levels, width, height) of the file's main image, from its page directories alone."""
    with _open_tiff(path) as (tif, _):
        series = tif.series[0]
        shape = series.shape
        axes = series.axes
        height, width = shape[axes.index("Y")], shape[axes.index("X")]
        return len(series.levels), int(width), int(height)
