"""The image under the mask: a DisplayPicture drawn straight from its own buffer.

A QPixmap would hold its own 4 bytes per pixel (256 MiB for an 8192 x 8192 slide) and take a second to
convert each time the image is shown. A QImage over the picture's numpy buffer holds nothing extra and
is made instantly, so switching images costs nothing; 8-bit grey is drawn as an indexed image whose
colour table is the display stretch. Large pictures get coarser levels for zooming out, as slides have.
"""
from __future__ import annotations

import cv2
import numpy as np
import shiboken6
from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal
from PySide6.QtGui import QImage

from segstudio.core.imageio import DisplayPicture
from segstudio.gui.canvas.tiles import MemoryItem, TileLevels, halving_levels


def picture_image(picture: DisplayPicture) -> QImage:
    """A QImage over ``picture.pixels`` (no copy): keep ``picture`` alive as long as the QImage."""
    pixels = np.ascontiguousarray(picture.pixels, dtype=np.uint8)
    if pixels is not picture.pixels:
        raise ValueError("a display picture's pixels must be C-contiguous uint8")
    h, w = pixels.shape[:2]
    if pixels.ndim == 3:
        return QImage(pixels.data, w, h, pixels.strides[0], QImage.Format.Format_RGB888)
    if picture.grey_levels is None:
        return QImage(pixels.data, w, h, pixels.strides[0], QImage.Format.Format_Grayscale8)
    image = QImage(pixels.data, w, h, pixels.strides[0], QImage.Format.Format_Indexed8)
    grey = picture.grey_levels.astype(np.uint32)
    image.setColorTable((0xFF000000 | (grey << 16) | (grey << 8) | grey).tolist())
    return image


class _LevelMade(QObject):
    made = Signal(object, int, object)  # the picture it was made from, level, (QImage, its pixels)


class _MakeLevel(QRunnable):
    def __init__(self, item: PictureItem, picture: DisplayPicture, level: int, size: tuple[int, int]) -> None:
        super().__init__()
        self.item, self.picture, self.level, self.size = item, picture, level, size

    def run(self) -> None:
        try:
            made = coarse_image(self.picture, self.size)
        except Exception:  # noqa: BLE001 - without the level, the finer one goes on being drawn
            made = None
        try:
            self.item.level_made.made.emit(self.picture, self.level, made)
        except RuntimeError:  # the window closed meanwhile
            pass


def coarse_image(picture: DisplayPicture, size: tuple[int, int]) -> tuple[QImage, np.ndarray | None]:
    """The picture averaged down to ``size`` (width, height), as a QImage and the pixels it reads (None when
    it owns them). Levels up to 2048^2 are held as RGB32, which the painter scales without converting
    (about 6x faster zoomed out than an indexed grey image, for 16 MB at most); larger ones keep the
    picture's own format and bytes."""
    pixels = np.ascontiguousarray(cv2.resize(picture.pixels, size, interpolation=cv2.INTER_AREA))
    image = picture_image(DisplayPicture(pixels, picture.grey_levels))
    if size[0] * size[1] <= 2048 * 2048:
        return image.convertToFormat(QImage.Format.Format_RGB32), None
    return image, pixels


def overview_image(picture: DisplayPicture, side: int = 400) -> QImage:
    """The whole picture about ``side`` pixels on its longer side, for the overview: every n-th pixel first
    (cheap on a large picture), then averaged down."""
    h, w = picture.shape
    step = max(1, max(h, w) // (2 * side))
    sampled = np.ascontiguousarray(picture.pixels[::step, ::step])
    scale = side / max(sampled.shape[:2])
    size = (max(1, round(sampled.shape[1] * scale)), max(1, round(sampled.shape[0] * scale)))
    image, _pixels = coarse_image(DisplayPicture(sampled, picture.grey_levels), size)
    return image


_POOL: list[QThreadPool] = []


def _levels_pool() -> QThreadPool:
    """One thread of its own for making levels, so a slide's tiles on the global pool never queue behind
    them (a level of an 8192^2 colour image takes about 80 ms)."""
    if not _POOL:
        pool = QThreadPool()
        pool.setMaxThreadCount(1)
        _POOL.append(pool)
    return _POOL[0]


class PictureItem(MemoryItem):
    """Draws one DisplayPicture at scene (0, 0), one scene unit per pixel, by the tiled item's path for
    levels held in memory.

    A picture larger than LEVELS_FROM (gui.canvas.tiles) on a side has coarser levels, halving down to
    about 1024 pixels, as a slide has: zoomed out, the level that fits is drawn (smoother, and a fraction of
    the pixels to convert and scale per frame). Each is made on a thread of its own the first time the zoom
    needs it; until then the finer level is drawn.
    """

    def __init__(self, pool: QThreadPool | None = None) -> None:
        super().__init__(smooth=True)
        self._picture: DisplayPicture | None = None
        self._coarse: dict[int, tuple[QImage, np.ndarray | None]] = {}
        self._making: set[int] = set()
        self.pool = pool if pool is not None else _levels_pool()
        self.level_made = _LevelMade()
        self.level_made.made.connect(self._level_made)

    def set_picture(self, picture: DisplayPicture | None) -> None:
        # The QImage reads the picture's buffer: the two are kept and dropped together.
        self._picture = picture
        self._coarse, self._making = {}, set()
        self.show_image(None if picture is None else picture_image(picture))
        if picture is not None:
            self.levels = TileLevels(halving_levels(*picture.shape), max(picture.shape))

    def picture(self) -> DisplayPicture | None:
        return self._picture

    def image(self) -> QImage | None:
        """The QImage drawn at full resolution (sharing the picture's pixels)."""
        return self._image

    def resident(self, level: int) -> QImage | None:
        if level == 0 or self._image is None:
            return self._image
        made = self._coarse.get(level)
        if made is not None:
            return made[0]
        if level not in self._making:
            self._making.add(level)
            width, height, _ds = self.levels.levels[level]
            self.pool.start(_MakeLevel(self, self._picture, level, (width, height)))
        finer = [k for k in self._coarse if k < level]
        return self._coarse[max(finer)][0] if finer else self._image

    def _level_made(self, picture: DisplayPicture, level: int, made) -> None:
        if not shiboken6.isValid(self) or picture is not self._picture:  # another picture is shown by now
            return
        self._making.discard(level)
        if made is not None:
            self._coarse[level] = made
            self.update()

    def busy(self) -> bool:
        return bool(self._making)
