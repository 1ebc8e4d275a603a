"""The shapes a label store paints, drawn chunk by chunk: each is its box and a function that marks 1s into
a chunk-sized buffer whose pixel (0, 0) is the given full-resolution pixel (OpenCV, sub-pixel exact)."""
from __future__ import annotations

import math
from collections.abc import Callable

import cv2
import numpy as np

Box = tuple[int, int, int, int]  # y0, x0, height, width in full-resolution pixels
Shape = Callable[[np.ndarray, int, int], None]  # draws 1s into a chunk-sized uint8 buffer at an offset


def segment(p0: tuple[float, float], p1: tuple[float, float], radius: float) -> tuple[Box, Shape]:
    """The box and the drawing of a round-ended segment of ``radius`` from p0 to p1 (x, y)."""
    r = max(0.5, float(radius))
    (xa, ya), (xb, yb) = p0, p1
    box = (math.floor(min(ya, yb) - r), math.floor(min(xa, xb) - r),
           math.ceil(abs(yb - ya) + 2 * r) + 2, math.ceil(abs(xb - xa) + 2 * r) + 2)
    shift = 4  # OpenCV's sub-pixel coordinates: 1/16 pixel

    def draw(buffer: np.ndarray, oy: int, ox: int) -> None:
        a = (round((xa - ox) * 16), round((ya - oy) * 16))
        b = (round((xb - ox) * 16), round((yb - oy) * 16))
        cv2.circle(buffer, a, round(r * 16), 1, -1, cv2.LINE_8, shift)
        if a != b:
            cv2.circle(buffer, b, round(r * 16), 1, -1, cv2.LINE_8, shift)
            cv2.line(buffer, a, b, 1, max(1, round(2 * r)), cv2.LINE_8, shift)

    return box, draw


def polygon(points: list[tuple[float, float]]) -> tuple[Box, Shape]:
    """The box and the drawing of a filled polygon (x, y vertices)."""
    pts = np.asarray(points, np.float64)
    x0, y0 = np.floor(pts.min(axis=0)).astype(int)
    x1, y1 = np.ceil(pts.max(axis=0)).astype(int)

    def draw(buffer: np.ndarray, oy: int, ox: int) -> None:
        shifted = np.round((pts - (ox, oy)) * 16).astype(np.int32)
        cv2.fillPoly(buffer, [shifted], 1, cv2.LINE_8, 4)

    return (int(y0), int(x0), int(y1 - y0) + 1, int(x1 - x0) + 1), draw


def clip(box: Box, height: int, width: int) -> Box:
    y0, x0, h, w = box
    ya, xa = max(0, y0), max(0, x0)
    return ya, xa, min(height, y0 + h) - ya, min(width, x0 + w) - xa
