"""Feature maps to pictures: colour maps, value scaling and numpy -> QPixmap for the inspector."""
from __future__ import annotations

from functools import cache

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QImage, QPen, QPixmap
from PySide6.QtWidgets import QGraphicsRectItem

COLORMAPS = ("viridis", "magma", "grey", "signed")  # signed: blue below zero, white at zero, red above
SCALES = ("per channel", "shared")


@cache
def colormap_lut(name: str) -> np.ndarray:
    """(256, 3) uint8 RGB lookup table."""
    ramp = np.arange(256, dtype=np.uint8)
    if name == "grey":
        return np.repeat(ramp[:, None], 3, axis=1)
    if name.startswith("signed"):
        # Negative values blue, zero white, positive red: the sign of a pre-activation is what matters.
        t = np.linspace(-1.0, 1.0, 256)
        red = np.where(t < 0, 1.0 + t, 1.0)
        blue = np.where(t > 0, 1.0 - t, 1.0)
        green = 1.0 - np.abs(t)
        lut = np.stack([red, green, blue], axis=1)
        return np.clip(np.round(lut * 255), 0, 255).astype(np.uint8)
    import cv2

    code = {"viridis": cv2.COLORMAP_VIRIDIS, "magma": cv2.COLORMAP_MAGMA}.get(name, cv2.COLORMAP_VIRIDIS)
    return np.ascontiguousarray(cv2.applyColorMap(ramp[:, None], code)[:, 0, ::-1])


def value_range(values: np.ndarray, signed: bool) -> tuple[float, float]:
    """(low, high) used to map values onto the colour map; symmetric about zero for signed maps."""
    values = np.asarray(values, np.float32)
    if values.size == 0:
        return 0.0, 1.0
    low, high = float(np.nanmin(values)), float(np.nanmax(values))
    if signed:
        bound = max(abs(low), abs(high))
        return -bound, bound
    return low, high


def is_flat(low: float, high: float) -> bool:
    """No contrast worth showing: equal ends, or a spread at float32 rounding level (a global average
    resampled by interpolation differs from itself only in the last bits, which a stretch would blow up)."""
    return not high - low > 1e-5 * max(abs(low), abs(high), 1e-30)


def normalise(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """Values mapped onto [0, 1]; a flat map becomes mid-grey rather than amplified rounding noise."""
    values = np.asarray(values, np.float32)
    if is_flat(low, high):
        return np.full(values.shape, 0.5, np.float32)
    return np.clip((values - low) / (high - low), 0.0, 1.0)


def colourise(unit: np.ndarray, colormap: str) -> np.ndarray:
    """(h, w) values in [0, 1] -> (h, w, 3) uint8 RGB."""
    index = np.round(np.nan_to_num(np.asarray(unit, np.float32)) * 255).astype(np.uint8)
    return colormap_lut(colormap)[index]


def label_colours(labels: np.ndarray, count: int) -> np.ndarray:
    """Argmax class maps in distinct colours (class 0 dark)."""
    palette = np.array([[30, 30, 30], [230, 80, 60], [70, 170, 240], [250, 200, 50], [120, 220, 120],
                        [200, 110, 230], [255, 150, 200], [160, 160, 160]], np.uint8)
    if count > len(palette):
        extra = np.random.default_rng(7).integers(40, 255, (count - len(palette), 3), dtype=np.uint8)
        palette = np.concatenate([palette, extra])
    return palette[np.clip(np.asarray(labels).astype(np.int64), 0, len(palette) - 1)]


def rgb_pixmap(rgb: np.ndarray, size: int | None = None) -> QPixmap:
    """(h, w, 3) uint8 -> QPixmap, optionally resampled so its longer side is `size` (nearest when
    enlarging, so single cells of a coarse map stay visible as cells)."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    h, w = rgb.shape[:2]
    if size is not None and max(h, w) != size:
        import cv2

        factor = size / max(h, w)
        new_w, new_h = max(1, round(w * factor)), max(1, round(h * factor))
        method = cv2.INTER_NEAREST if factor > 1 else cv2.INTER_AREA
        rgb = np.ascontiguousarray(cv2.resize(rgb, (new_w, new_h), interpolation=method))
        h, w = rgb.shape[:2]
    image = QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888)
    return QPixmap.fromImage(image.copy())


def map_pixmap(values: np.ndarray, colormap: str, value_range_: tuple[float, float], size: int | None = None
               ) -> QPixmap:
    return rgb_pixmap(colourise(normalise(values, *value_range_), colormap), size)


def region_box_item(scene) -> QGraphicsRectItem:
    """The dashed box that marks the inspected region on the image (hidden until a region is computed)."""
    item = QGraphicsRectItem()
    pen = QPen(QColor(255, 210, 0), 0, Qt.PenStyle.DashLine)
    pen.setCosmetic(True)
    pen.setWidthF(1.5)
    item.setPen(pen)
    item.setZValue(5)
    item.setVisible(False)
    scene.addItem(item)
    return item
