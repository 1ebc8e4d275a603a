"""The scale bar of a slide: a round length in µm or mm, about a tenth of the view wide, bottom left."""
from __future__ import annotations

import math

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QFont, QPainter, QPen

TARGET_PIXELS = 120  # the bar's length on screen is near this


def nice_length_um(um_per_screen_pixel: float, target_pixels: float = TARGET_PIXELS) -> float:
    """The 1-2-5 length (µm) nearest below ``target_pixels`` on screen."""
    raw = um_per_screen_pixel * target_pixels
    decade = 10 ** math.floor(math.log10(raw))
    for step in (5, 2, 1):
        if step * decade <= raw:
            return step * decade
    return decade


def bar_label(length_um: float) -> str:
    if length_um >= 1000:
        return f"{length_um / 1000:g} mm"
    return f"{length_um:g} µm"


def draw_scale_bar(view, painter: QPainter, um_per_pixel: float) -> None:
    """Draw the bar in viewport coordinates over whatever the view shows."""
    zoom = view.transform().m11()
    if zoom <= 0:
        return
    um_per_screen = um_per_pixel / zoom
    length = nice_length_um(um_per_screen)
    pixels = length / um_per_screen
    painter.save()
    painter.resetTransform()
    height = view.viewport().height()
    x, y = 16.0, height - 22.0
    painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)
    painter.fillRect(QRectF(x - 6, y - 22, pixels + 12, 34), QColor(0, 0, 0, 140))
    painter.setPen(QPen(QColor(255, 255, 255), 3))
    painter.drawLine(int(x), int(y), int(x + pixels), int(y))
    font = QFont(painter.font())
    font.setPointSizeF(9)
    painter.setFont(font)
    painter.drawText(QRectF(x, y - 20, max(pixels, 60), 16), Qt.AlignmentFlag.AlignLeft, bar_label(length))
    painter.restore()
