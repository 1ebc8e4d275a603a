"""Tiled, level-of-detail drawing for whole slides: only the tiles in view, at the level that fits the zoom.

A TiledItem covers level-0 coordinates (one scene unit per full-resolution pixel, like PictureItem) and
asks its source for tiles of the level whose pixels are nearest the screen's without upscaling. Slide
tiles are decoded on a thread pool into a bounded LRU cache; until a tile arrives, the best coarser tile
already cached is drawn stretched in its place, so panning never shows holes, only a brief blur. Label
tiles come from the label store's in-memory pyramid and are made on the pool too: when labels change, the
tiles over them are made again there, and the old ones are drawn until the new ones arrive (a tile made
from labels older than the last change is thrown away and made again).

Ordinary images, masks and object maps are drawn by this item too (the canvas has one drawing path for
slides and images): a level held whole in memory (``resident``) is drawn straight from its buffer, only
the part exposed, with no tiles, no copy and no cache, since nothing is missing and nothing needs loading.
MemoryItem is the item for such a layer (gui.canvas.picture, .overlay and .objects build on it).
"""
from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable

import numpy as np
import shiboken6
from PySide6.QtCore import QObject, QRectF, QRunnable, QThreadPool, Signal
from PySide6.QtGui import QImage, QPainter
from PySide6.QtWidgets import QGraphicsItem, QGraphicsView, QStyleOptionGraphicsItem, QWidget

# 768 RGB tiles of 256 x 256 are 150 MB: a full-HD screen at two levels several times over.
CACHE_TILES = 768
Key = tuple[int, int, int]  # level, tile row, tile column


class TileLevels:
    """The levels a tiled item draws from: (width, height, downsample) each, and one tile size."""

    def __init__(self, levels: list[tuple[int, int, float]], tile: int) -> None:
        self.levels, self.tile = levels, tile

    def best(self, downsample: float) -> int:
        best = 0
        for index, (_w, _h, ds) in enumerate(self.levels):
            if ds <= downsample * 1.01:
                best = index
        return best

    def visible(self, level: int, rect: QRectF) -> list[Key]:
        """Tiles of ``level`` that a level-0 rectangle touches, centre first (the eye goes there)."""
        width, height, ds = self.levels[level]
        span = self.tile * ds
        c0, r0 = max(0, math.floor(rect.left() / span)), max(0, math.floor(rect.top() / span))
        c1 = min(math.ceil(width / self.tile), math.ceil(rect.right() / span))
        r1 = min(math.ceil(height / self.tile), math.ceil(rect.bottom() / span))
        keys = [(level, r, c) for r in range(r0, r1) for c in range(c0, c1)]
        cr, cc = (r0 + r1 - 1) / 2, (c0 + c1 - 1) / 2
        return sorted(keys, key=lambda k: (k[1] - cr) ** 2 + (k[2] - cc) ** 2)

    def scene_rect(self, key: Key) -> QRectF:
        level, row, col = key
        width, height, ds = self.levels[level]
        w = min(self.tile, width - col * self.tile)
        h = min(self.tile, height - row * self.tile)
        return QRectF(col * self.tile * ds, row * self.tile * ds, w * ds, h * ds)


class _Arrived(QObject):
    tile = Signal(object, object, int)  # key, QImage, the generation of the key it was made for


class _LoadTile(QRunnable):
    def __init__(self, item: TiledItem, key: Key) -> None:
        super().__init__()
        self.item, self.key = item, key

    def run(self) -> None:
        item = self.item
        with item.lock:
            if self.key not in item.wanted:  # the view moved on before this tile's turn came
                item.pending.discard(self.key)
                return
            generation = item.generation.get(self.key, 0)
        try:
            image = item.load(self.key)
        except Exception:  # noqa: BLE001 - a damaged tile draws as a hole, the rest of the slide still shows
            image = None
        try:
            item.arrived.tile.emit(self.key, image, generation)
        except RuntimeError:  # the window closed while this tile was being made: nobody waits for it
            pass


def colour_table(lut_rgba: np.ndarray) -> list[int]:
    """256 ARGB entries from an (N, 4) RGBA lookup table; ids past its end are transparent."""
    lut = np.asarray(lut_rgba, np.uint32)[:256]
    table = np.zeros(256, np.uint32)
    table[: len(lut)] = (lut[:, 3] << 24) | (lut[:, 0] << 16) | (lut[:, 1] << 8) | lut[:, 2]
    return table.tolist()


class TiledItem(QGraphicsItem):
    """Draws the level that fits the zoom: straight from memory where ``resident(level)`` has it, otherwise
    tile by tile from ``load(key) -> QImage | None``.

    asynchronous: tiles are loaded on ``pool``; otherwise in paint().
    """

    def __init__(self, levels: TileLevels, load: Callable[[Key], QImage | None] | None, *, asynchronous: bool,
                 pool: QThreadPool | None = None, cache_tiles: int = CACHE_TILES) -> None:
        super().__init__()
        self.levels, self.load, self.asynchronous = levels, load, asynchronous
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemUsesExtendedStyleOption)
        self.cache: OrderedDict[Key, QImage | None] = OrderedDict()
        self.cache_tiles = cache_tiles
        self.lock = threading.Lock()
        self.wanted: set[Key] = set()
        self.pending: set[Key] = set()
        self.stale: dict[Key, QImage | None] = {}  # tiles whose source changed: drawn until remade
        self.generation: dict[Key, int] = {}  # how many times each tile's source changed
        self.requested: list[Key] = []  # every tile asked of the source, in order (tests and benchmarks read it)
        self.last_level: int | None = None
        self.pool = pool if pool is not None else QThreadPool.globalInstance()
        self.arrived = _Arrived()
        self.arrived.tile.connect(self._tile_arrived)
        self._smooth = True

    def boundingRect(self) -> QRectF:
        width, height, _ds = self.levels.levels[0]
        return QRectF(0, 0, width, height)

    def set_smooth(self, smooth: bool) -> None:
        self._smooth = smooth

    def invalidate(self, y0: int, x0: int, h: int, w: int) -> None:
        """Forget the tiles over a level-0 box (the labels there changed) and draw it again."""
        box = QRectF(x0, y0, w, h)
        with self.lock:
            for key in [k for k in self.cache if self.levels.scene_rect(k).intersects(box)]:
                self.stale[key] = self.cache.pop(key)
            for key in [k for k in self.pending if self.levels.scene_rect(k).intersects(box)]:
                self.generation[key] = self.generation.get(key, 0) + 1
        self.update(box)

    def resident(self, level: int) -> QImage | None:
        """The whole of ``level`` when it is held in memory, to draw from directly; None: load it by tiles."""
        return None

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        if len(self.levels.levels) == 1:
            level = 0
        else:
            zoom = math.hypot(painter.worldTransform().m11(), painter.worldTransform().m12()) or 1.0
            level = self.levels.best(1.0 / zoom)
        self.last_level = level
        whole = self.resident(level)
        if whole is not None:
            self._draw_resident(painter, whole, option.exposedRect)
            return
        exposed = option.exposedRect.intersected(self.boundingRect())
        keys = self.levels.visible(level, exposed)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, self._smooth)
        missing = []
        for key in keys:
            if key in self.cache:
                self.cache.move_to_end(key)
                self._draw(painter, key, self.cache[key])
            elif self.asynchronous:
                missing.append(key)
                if key in self.stale:
                    self._draw(painter, key, self.stale[key])
                else:
                    self._draw_stand_in(painter, key)
            else:
                self.requested.append(key)
                self._draw(painter, key, self._remember(key, self.load(key)))
        if missing:
            self._request(missing, self._in_view(level, widget) or keys)

    def _draw_resident(self, painter: QPainter, image: QImage, exposed: QRectF) -> None:
        """The exposed part of a level held in memory, from its own buffer: only that part is converted and
        drawn (an indexed mask is not turned into colours everywhere on each paint). Two pixels of margin
        keep smooth scaling from clamping at the edge of a partial repaint; the painter clips them. The
        level's scale is its size against level 0's."""
        width, height = self.levels.levels[0][:2]
        sx, sy = width / max(1, image.width()), height / max(1, image.height())
        scaled = sx != 1.0 or sy != 1.0
        if scaled:
            exposed = QRectF(exposed.left() / sx, exposed.top() / sy, exposed.width() / sx, exposed.height() / sy)
        part = exposed.toAlignedRect()
        if self._smooth is not None:
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, self._smooth)
            smooth = self._smooth
        else:
            smooth = painter.testRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        if smooth:
            part.adjust(-2, -2, 2, 2)
        part = part.intersected(image.rect())
        if part.isEmpty():
            return
        if scaled:
            painter.drawImage(QRectF(part.x() * sx, part.y() * sy, part.width() * sx, part.height() * sy),
                              image, QRectF(part))
        else:
            painter.drawImage(part.topLeft(), image, part)

    def _in_view(self, level: int, widget: QWidget | None) -> list[Key]:
        """Every tile of ``level`` in the view, not only in the part being repainted: a partial repaint
        (one tile's update) must not cancel the loads of the other tiles still on their way."""
        view = widget.parent() if widget is not None else None
        if not isinstance(view, QGraphicsView):
            return []
        rect = view.mapToScene(view.viewport().rect()).boundingRect().intersected(self.boundingRect())
        return self.levels.visible(level, rect)

    def _draw(self, painter: QPainter, key: Key, image: QImage | None) -> None:
        if image is not None:
            painter.drawImage(self.levels.scene_rect(key), image)

    def _draw_stand_in(self, painter: QPainter, key: Key) -> None:
        """The nearest coarser tile already cached, stretched over ``key``'s place."""
        target = self.levels.scene_rect(key)
        for level in range(key[0] + 1, len(self.levels.levels)):
            _w, _h, ds = self.levels.levels[level]
            span = self.levels.tile * ds
            coarse = (level, int(target.top() // span), int(target.left() // span))
            image = self.cache.get(coarse)
            if image is None:
                continue
            source_rect = self.levels.scene_rect(coarse)
            scale = image.width() / source_rect.width()
            part = QRectF((target.left() - source_rect.left()) * scale, (target.top() - source_rect.top()) * scale,
                          target.width() * scale, target.height() * scale)
            painter.drawImage(target, image, part)
            return

    def _request(self, missing: list[Key], visible: list[Key]) -> None:
        with self.lock:
            self.wanted = set(visible)
            for key in missing:
                if key in self.pending:
                    continue
                self.pending.add(key)
                self.requested.append(key)
                self.pool.start(_LoadTile(self, key))

    def _tile_arrived(self, key: Key, image: QImage | None, generation: int) -> None:
        with self.lock:
            self.pending.discard(key)
            outdated = generation != self.generation.get(key, 0)
        if not shiboken6.isValid(self):  # the slide's window closed while the tile was on its way
            return
        if outdated:  # made from labels that changed since: make it again (update() asks for it)
            self.update(self.levels.scene_rect(key))
            return
        self.stale.pop(key, None)
        self._remember(key, image)
        self.update(self.levels.scene_rect(key))

    def _remember(self, key: Key, image: QImage | None) -> QImage | None:
        self.cache[key] = image
        while len(self.cache) > self.cache_tiles:
            self.cache.popitem(last=False)
        return image

    def busy(self) -> bool:
        """Whether something asked of the pool (tiles; a memory item's levels) is still on its way."""
        with self.lock:
            return bool(self.pending)

    def settle(self, timeout_ms: int = 5000) -> bool:
        """Wait for what was asked of the pool to arrive (tests, benchmarks); True when nothing is pending."""
        from PySide6.QtCore import QCoreApplication, QDeadlineTimer

        deadline = QDeadlineTimer(timeout_ms)
        while not deadline.hasExpired():
            self.pool.waitForDone(20)
            QCoreApplication.processEvents()
            if not self.busy():
                return True
        return False


# Images held in memory (pictures, masks) larger than this on a side get coarser levels for zooming out.
LEVELS_FROM = 2048


def halving_levels(height: int, width: int, from_side: int = LEVELS_FROM) -> list[tuple[int, int, float]]:
    """(width, height, downsample) of an image held in memory and of its halvings, when it is larger than
    ``from_side`` on a side: down to about 1024 pixels, each level every 2nd pixel of the one before (sizes
    rounded up, as a stride of 2 gives)."""
    levels, ds = [(width, height, 1.0)], 2
    while max(height, width) > from_side and max(height, width) / ds >= 1024:
        levels.append((-(-width // ds), -(-height // ds), float(ds)))
        ds *= 2
    return levels


class MemoryItem(TiledItem):
    """A layer held whole in memory (an ordinary image, its mask, its objects): one level, one QImage over the
    layer's own buffer, drawn where exposed. Subclasses keep that buffer and call ``show_image``.

    smooth: scale smoothly or by nearest pixel; None (masks, objects) draws as the view does.
    """

    def __init__(self, smooth: bool | None = None) -> None:
        super().__init__(TileLevels([(0, 0, 1.0)], 1), None, asynchronous=False)
        self._image: QImage | None = None
        self._smooth = smooth

    def show_image(self, image: QImage | None) -> None:
        """Draw ``image`` (which reads a buffer its caller keeps alive) from scene (0, 0), a unit a pixel."""
        self.prepareGeometryChange()
        self._image = image
        w, h = (0, 0) if image is None else (image.width(), image.height())
        self.levels = TileLevels([(w, h, 1.0)], max(1, w, h))
        self.update()

    def resident(self, level: int) -> QImage | None:
        return self._image

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        if self._image is not None:
            super().paint(painter, option, widget)

    def set_smooth(self, smooth: bool | None) -> None:
        if smooth != self._smooth:
            self._smooth = smooth
            self.update()


# --- sources ------------------------------------------------------------------------------------------------
def rgb_image(pixels: np.ndarray) -> QImage:
    """An (H, W, 3) or (H, W, 1) uint8 array as a QImage owning its copy of the pixels."""
    pixels = np.ascontiguousarray(pixels)
    h, w = pixels.shape[:2]
    if pixels.ndim == 2 or pixels.shape[2] == 1:
        return QImage(pixels.data, w, h, pixels.strides[0], QImage.Format.Format_Grayscale8).copy()
    # RGB32 is what the raster painter draws without converting: made once here, on the pool, not per frame.
    return QImage(pixels[..., :3].copy().data, w, h, w * 3, QImage.Format.Format_RGB888).convertToFormat(
        QImage.Format.Format_RGB32)


def slide_item(slide, pool: QThreadPool | None = None) -> TiledItem:
    """The pixels of a core.imageio.Slide, tile by tile on the pool."""
    tile = max(256, min(512, slide.levels[0].tile_width))
    levels = TileLevels([(lv.width, lv.height, lv.downsample) for lv in slide.levels], tile)

    def load(key: Key) -> QImage:
        level, row, col = key
        width, height, _ds = levels.levels[level]
        w, h = min(tile, width - col * tile), min(tile, height - row * tile)
        return rgb_image(slide.read_region(level, col * tile, row * tile, w, h))

    item = TiledItem(levels, load, asynchronous=True, pool=pool)
    item.setZValue(0)
    return item


def label_item(store, lut_rgba: np.ndarray, pool: QThreadPool | None = None) -> TiledItem:
    """The labels of a core.label_store.LabelStore through class colours, made on the pool; empty tiles draw
    nothing. A tile whose ids all fit in a byte is an indexed image (the class colours its colour table);
    one holding ids over 255 (16-bit labels) is coloured pixel by pixel through the whole table."""
    tile = 512
    levels = TileLevels([(grid.width, grid.height, float(store.downsample(k)))
                         for k, grid in enumerate(store.levels)], tile)
    table = {"colours": colour_table(lut_rgba), "lut": _wide_lut(lut_rgba)}

    def load(key: Key) -> QImage | None:
        level, row, col = key
        width, height, _ds = levels.levels[level]
        w, h = min(tile, width - col * tile), min(tile, height - row * tile)
        if not store.any_in(row * tile, col * tile, h, w, level=level):
            return None
        labels = store.read(row * tile, col * tile, h, w, level=level)
        if not labels.any():
            return None
        if labels.dtype != np.uint8 and labels.max() > 255:
            return _coloured(labels, table["lut"])
        labels = np.ascontiguousarray(labels.astype(np.uint8) if labels.dtype != np.uint8 else labels)
        image = QImage(labels.data, w, h, labels.strides[0], QImage.Format.Format_Indexed8).copy()
        image.setColorTable(table["colours"])
        return image

    item = TiledItem(levels, load, asynchronous=True, pool=pool)
    item.setZValue(1)
    item.colours = table  # set_colours() replaces the table and redraws

    def set_colours(lut: np.ndarray) -> None:
        table["colours"], table["lut"] = colour_table(lut), _wide_lut(lut)
        item.invalidate(0, 0, levels.levels[0][1], levels.levels[0][0])

    item.set_colours = set_colours
    return item


def _wide_lut(lut_rgba: np.ndarray) -> np.ndarray:
    """The RGBA table with one transparent row after it, where ids past its end are sent."""
    lut = np.asarray(lut_rgba, np.uint8)
    return np.concatenate([lut, np.zeros((1, 4), np.uint8)])


def _coloured(labels: np.ndarray, lut: np.ndarray) -> QImage:
    """Labels of any width through an RGBA table, as a premultiplied ARGB32 image (what the painter draws)."""
    rgba = np.ascontiguousarray(lut[np.minimum(labels, len(lut) - 1)])
    h, w = labels.shape
    return QImage(rgba.data, w, h, w * 4, QImage.Format.Format_RGBA8888).convertToFormat(
        QImage.Format.Format_ARGB32_Premultiplied)
