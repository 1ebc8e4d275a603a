"""Whole-slide images: pyramidal TIFF, SVS, NDPI and OME-TIFF read lazily, one region of one level at a time.

Reading is tiffslide's (an OpenSlide-compatible API over tifffile and zarr); OpenSlide itself reads the
formats only it knows (MRXS and others) when the optional ``openslide`` extra is installed. A Slide never
holds the full-resolution pixels: the canvas asks for the tiles in view at the level that fits the zoom.
Associated images (label, macro, thumbnail) are listed as such, never as pages of the image.

Every failure to open is an ImageReadError naming the file and the reason, like the other readers.
"""
from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from segstudio.core.imageio.types import ImageReadError

# Files with more than one level, or more pixels than this, open as slides rather than whole arrays.
SLIDE_SUFFIXES: tuple[str, ...] = (".svs", ".ndpi", ".scn", ".bif", ".mrxs", ".vms", ".vmu", ".svslide")
TIFF_SUFFIXES: tuple[str, ...] = (".tif", ".tiff", ".ome.tif", ".ome.tiff")
# Formats that only OpenSlide reads (tiffslide reads the TIFF-based ones).
_OPENSLIDE_ONLY = (".mrxs", ".vms", ".vmu", ".svslide")


@dataclass(frozen=True)
class SlideLevel:
    """One level of the pyramid: its size, how much smaller than level 0, and its tile size."""

    width: int
    height: int
    downsample: float
    tile_width: int
    tile_height: int


@dataclass(frozen=True)
class SlideInfo:
    """What the file says about itself: everything `segstudio info` prints."""

    path: Path
    levels: tuple[SlideLevel, ...]
    channels: int
    dtype: str
    mpp: tuple[float, float] | None  # micrometres per pixel (x, y) at level 0
    magnification: float | None  # objective power the slide was scanned at
    vendor: str
    associated: dict[str, tuple[int, int]]  # name -> (width, height)
    reader: str

    @property
    def width(self) -> int:
        return self.levels[0].width

    @property
    def height(self) -> int:
        return self.levels[0].height


class Slide:
    """An open whole-slide image. Thread-safe for read_region: the canvas reads tiles on a pool of threads."""

    def __init__(self, path: os.PathLike | str) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._backend = _open_backend(self.path)
        self.info = self._backend.info()

    # --- what the file holds ------------------------------------------------------------------------
    @property
    def levels(self) -> tuple[SlideLevel, ...]:
        return self.info.levels

    @property
    def width(self) -> int:
        return self.info.width

    @property
    def height(self) -> int:
        return self.info.height

    @property
    def shape(self) -> tuple[int, int]:
        return self.info.height, self.info.width

    @property
    def mpp(self) -> float | None:
        """Micrometres per pixel at level 0 (the mean of x and y), or None when the file does not say."""
        return None if self.info.mpp is None else (self.info.mpp[0] + self.info.mpp[1]) / 2

    def best_level(self, downsample: float) -> int:
        """The coarsest level that still has at least as many pixels as the screen shows (no upscaling).

        ``downsample``: level-0 pixels per screen pixel. A tiny tolerance keeps 4.0001 from skipping a level
        of downsample 4.0003.
        """
        best = 0
        for index, level in enumerate(self.levels):
            if level.downsample <= downsample * 1.01:
                best = index
        return best

    # --- pixels ---------------------------------------------------------------------------------------
    def read_region(self, level: int, x: int, y: int, width: int, height: int) -> np.ndarray:
        """(height, width, channels) uint8 pixels of ``level`` at (x, y) in that level's own pixels.

        The part outside the slide comes back as zeros, so edge tiles keep their size.
        """
        lv = self.levels[level]
        out = np.zeros((height, width, self.info.channels), np.uint8)
        x0, y0 = max(0, x), max(0, y)
        x1, y1 = min(lv.width, x + width), min(lv.height, y + height)
        if x1 > x0 and y1 > y0:
            out[y0 - y:y1 - y, x0 - x:x1 - x] = self._backend.read(level, x0, y0, x1 - x0, y1 - y0)
        return out

    def thumbnail(self, max_side: int = 512) -> np.ndarray:
        """The whole slide at most ``max_side`` pixels a side, read from the coarsest level that suffices."""
        scale = max(self.width, self.height) / max_side
        level = self.best_level(max(1.0, scale))
        lv = self.levels[level]
        pixels = self.read_region(level, 0, 0, lv.width, lv.height)
        step = max(1, math.ceil(max(lv.width, lv.height) / max_side))
        return np.ascontiguousarray(pixels[::step, ::step])

    def associated_image(self, name: str) -> np.ndarray:
        """The label, macro or thumbnail image stored beside the slide, as (H, W, C) uint8."""
        if name not in self.info.associated:
            raise KeyError(f"{self.path.name} has no associated image '{name}'")
        return self._backend.associated(name)

    def close(self) -> None:
        self._backend.close()

    def __enter__(self) -> Slide:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# --- backends -------------------------------------------------------------------------------------------------
class _TiffSlideBackend:
    def __init__(self, path: Path) -> None:
        import tiffslide

        self.path = path
        self._slide = tiffslide.TiffSlide(path)
        self._version = getattr(tiffslide, "__version__", "")
        self._axes = self._slide.properties["tiffslide.series-axes"]

    def info(self) -> SlideInfo:
        slide, props = self._slide, self._slide.properties
        levels = []
        for index, (width, height) in enumerate(slide.level_dimensions):
            tw = props.get(f"tiffslide.level[{index}].tile-width") or 0
            th = props.get(f"tiffslide.level[{index}].tile-height") or 0
            levels.append(SlideLevel(int(width), int(height), float(slide.level_downsamples[index]),
                                     int(tw) or 256, int(th) or 256))
        dtype, channels = _zarr_depth(slide.zarr_group["0"], self._axes)
        associated = {name: (int(series.shape[1]), int(series.shape[0]))
                      for name, series in slide.associated_images.series_map.items()}
        return SlideInfo(self.path, tuple(levels), channels, dtype, _mpp(props), _float(props.get(
            "tiffslide.objective-power")), str(props.get("tiffslide.vendor") or "generic-tiff"), associated,
            f"tiffslide {self._version}".strip())

    def read(self, level: int, x: int, y: int, width: int, height: int) -> np.ndarray:
        # Level coordinates go straight to the level's array: read_region's level-0 location would be
        # rounded through the downsample and can land one pixel off on levels of uneven size.
        array = self._slide.zarr_group[str(level)]  # tiffslide keeps one group per thread
        if self._axes == "CYX":
            block = np.moveaxis(np.asarray(array[:, y:y + height, x:x + width]), 0, -1)
        elif self._axes == "YX":
            block = np.asarray(array[y:y + height, x:x + width])[..., None]
        else:
            block = np.asarray(array[y:y + height, x:x + width])
        return _as_uint8(block)

    def associated(self, name: str) -> np.ndarray:
        pixels = np.asarray(self._slide.associated_images.series_map[name].asarray())
        return _as_uint8(pixels if pixels.ndim == 3 else pixels[..., None])

    def close(self) -> None:
        self._slide.close()


class _OpenSlideBackend:
    """The optional `openslide` extra, for the formats only OpenSlide reads."""

    def __init__(self, path: Path) -> None:
        import openslide

        self.path = path
        self._slide = openslide.OpenSlide(str(path))
        self._version = getattr(openslide, "__version__", "")

    def info(self) -> SlideInfo:
        slide, props = self._slide, self._slide.properties
        levels = []
        for index, (width, height) in enumerate(slide.level_dimensions):
            tw = int(props.get(f"openslide.level[{index}].tile-width", 256))
            th = int(props.get(f"openslide.level[{index}].tile-height", 256))
            levels.append(SlideLevel(int(width), int(height), float(slide.level_downsamples[index]), tw, th))
        mpp = _mpp({"tiffslide.mpp-x": props.get("openslide.mpp-x"), "tiffslide.mpp-y": props.get("openslide.mpp-y")})
        associated = {name: image.size for name, image in slide.associated_images.items()}
        return SlideInfo(self.path, tuple(levels), 3, "uint8", mpp, _float(props.get("openslide.objective-power")),
                         str(props.get("openslide.vendor") or "unknown"), associated,
                         f"openslide-python {self._version}".strip())

    def read(self, level: int, x: int, y: int, width: int, height: int) -> np.ndarray:
        scale = self._slide.level_downsamples[level]
        region = self._slide.read_region((math.ceil(x * scale), math.ceil(y * scale)), level, (width, height))
        return np.asarray(region.convert("RGB"))

    def associated(self, name: str) -> np.ndarray:
        return np.asarray(self._slide.associated_images[name].convert("RGB"))

    def close(self) -> None:
        self._slide.close()


def _open_backend(path: Path):
    name = path.name.lower()
    if name.endswith(_OPENSLIDE_ONLY):
        try:
            return _OpenSlideBackend(path)
        except ImportError:
            raise ImageReadError(path, "this slide format needs OpenSlide: install segstudio[openslide]") from None
        except Exception as exc:
            raise ImageReadError(path, f"OpenSlide could not read it ({exc})") from None
    try:
        return _TiffSlideBackend(path)
    except ImageReadError:
        raise
    except FileNotFoundError:
        raise ImageReadError(path, "file does not exist") from None
    except PermissionError:
        raise ImageReadError(path, "permission denied") from None
    except NotImplementedError as exc:
        raise ImageReadError(path, f"this slide layout is not supported ({exc})") from None
    except Exception as exc:  # tifffile and zarr raise many types for damaged files
        detail = str(exc).strip() or type(exc).__name__
        raise ImageReadError(path, f"file is truncated or corrupt ({detail})") from None


def _zarr_depth(array, axes: str) -> tuple[str, int]:
    shape = array.shape
    channels = shape[0] if axes == "CYX" else (shape[2] if axes == "YXS" else 1)
    return np.dtype(array.dtype).name, int(channels)


def _as_uint8(pixels: np.ndarray) -> np.ndarray:
    """Slides are shown as 8-bit: wider types are scaled by their type's range (bright-field scanners
    write 8-bit; a 16-bit fluorescence pyramid keeps its look)."""
    if pixels.dtype == np.uint8:
        return pixels
    if pixels.dtype == np.uint16:
        return (pixels >> 8).astype(np.uint8)
    if pixels.dtype == bool:
        return pixels.astype(np.uint8) * 255
    return np.clip(pixels, 0, 255).astype(np.uint8)


def _float(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number > 0 else None


def _mpp(props: dict) -> tuple[float, float] | None:
    x, y = _float(props.get("tiffslide.mpp-x")), _float(props.get("tiffslide.mpp-y"))
    if x is None and y is None:
        return None
    return (x or y, y or x)


def slide_info(path: os.PathLike | str) -> SlideInfo:
    """Read a slide's header alone (levels, tiles, pixel size, associated images)."""
    with Slide(path) as slide:
        return slide.info
