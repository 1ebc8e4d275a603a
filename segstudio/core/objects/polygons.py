"""Objects as polygons and back, exactly: every pixel of an object is inside its polygon, every other outside.

Outlines are traced with scikit-image's marching squares (``find_contours`` at level 0.5) on each object's
own padded crop, so each ring passes half-way between an object pixel and a neighbour outside it. Filling a
ring back tests pixel centres (``skimage.draw.polygon``), and rings are combined by the even-odd rule, so
holes and islands inside holes come back as they were: mask -> polygon -> mask is the identity. No pixel
centre can lie on such a ring, so the test is never ambiguous.

Coordinates here are (row, col) with a pixel's centre at integers (scikit-image's convention). Files for
other tools use (x, y) with pixel (0, 0) covering 0..1 (QuPath, ImageJ, COCO): :func:`to_xy` and
:func:`from_xy` convert.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from skimage.draw import polygon as polygon_pixels
from skimage.measure import find_contours


@dataclass
class Shape:
    """One object's outline: ``parts`` is a list of polygons, each a list of rings (outer ring, then holes)."""

    object_id: int
    parts: list[list[np.ndarray]]

    @property
    def has_holes(self) -> bool:
        return any(len(part) > 1 for part in self.parts)

    def rings(self) -> Iterator[np.ndarray]:
        for part in self.parts:
            yield from part


def signed_area(ring: np.ndarray) -> float:
    """Shoelace area of a (row, col) ring; the sign tells its direction."""
    r, c = ring[:, 0], ring[:, 1]
    return 0.5 * float(np.dot(r, np.roll(c, -1)) - np.dot(c, np.roll(r, -1)))


def _inside(point: np.ndarray, ring: np.ndarray) -> bool:
    """Even-odd test of one (row, col) point against a ring."""
    r, c = ring[:, 0], ring[:, 1]
    r2, c2 = np.roll(r, -1), np.roll(c, -1)
    crosses = (r > point[0]) != (r2 > point[0])
    with np.errstate(divide="ignore", invalid="ignore"):
        at = c + (point[0] - r) * (c2 - c) / (r2 - r)
    return bool(np.count_nonzero(crosses & (point[1] < at)) % 2)


def group_rings(rings: Iterable[np.ndarray]) -> list[list[np.ndarray]]:
    """Rings -> polygons: each hole joins the smallest outer ring around it (outer rings run one way,
    holes the other, as marching squares traces them)."""
    rings = [r for r in rings if len(r) >= 3]
    areas = [signed_area(r) for r in rings]
    if not rings:
        return []
    # The ring with the largest |area| is an outer ring: its sign is the outer direction.
    outer_sign = np.sign(areas[int(np.argmax(np.abs(areas)))])
    outers = [i for i, a in enumerate(areas) if np.sign(a) == outer_sign]
    parts = {i: [rings[i]] for i in outers}
    for i, area in enumerate(areas):
        if np.sign(area) == outer_sign:
            continue
        holders = [o for o in outers if abs(areas[o]) > abs(area) and _inside(rings[i][0], rings[o])]
        if holders:
            parts[min(holders, key=lambda o: abs(areas[o]))].append(rings[i])
    return [parts[i] for i in outers]


def drop_collinear(ring: np.ndarray) -> np.ndarray:
    """The same ring without the vertices that lie on a straight run (the polygon does not change)."""
    before = ring - np.roll(ring, 1, axis=0)
    after = np.roll(ring, -1, axis=0) - ring
    turn = before[:, 0] * after[:, 1] - before[:, 1] * after[:, 0]
    keep = np.abs(turn) > 1e-9
    return ring[keep] if np.count_nonzero(keep) >= 3 else ring


def _crop_rings(crop: np.ndarray, y0: int, x0: int) -> list[np.ndarray]:
    padded = np.pad(crop, 1).astype(np.uint8)
    rings = []
    for contour in find_contours(padded, 0.5):
        ring = contour[:-1] if np.array_equal(contour[0], contour[-1]) else contour
        rings.append(drop_collinear(ring) + (y0 - 1, x0 - 1))
    return rings


def object_shapes(ids: np.ndarray) -> list[Shape]:
    """The outline of every object of an instance map (0 is background), in id order."""
    shapes = []
    for index, box in enumerate(ndimage.find_objects(ids)):
        if box is None:
            continue
        object_id = index + 1
        crop = ids[box] == object_id
        rings = _crop_rings(crop, box[0].start, box[1].start)
        shapes.append(Shape(object_id, group_rings(rings)))
    return shapes


def fill_rings(shape_hw: tuple[int, int], rings: Iterable[np.ndarray]) -> np.ndarray:
    """The pixels inside ``rings`` (even-odd rule: a hole, or an island in a hole, comes back as it was)."""
    inside = np.zeros(shape_hw, bool)
    for ring in rings:
        rr, cc = polygon_pixels(ring[:, 0], ring[:, 1], shape=shape_hw)
        inside[rr, cc] ^= True
    return inside


def paint_shapes(shape_hw: tuple[int, int], shapes: Iterable[tuple[int, Iterable[np.ndarray]]],
                 dtype=np.uint32) -> np.ndarray:
    """An instance map from ``(object id, rings)`` pairs; later objects cover earlier ones where they overlap."""
    ids = np.zeros(shape_hw, dtype)
    for object_id, rings in shapes:
        rings = list(rings)
        if not rings:
            continue
        stacked = np.concatenate(rings)
        lo = np.maximum(np.floor(stacked.min(axis=0)).astype(int), 0)
        hi = np.minimum(np.ceil(stacked.max(axis=0)).astype(int) + 1, shape_hw)
        if np.any(hi <= lo):
            continue  # wholly outside the image
        local = [ring - lo for ring in rings]
        inside = fill_rings((int(hi[0] - lo[0]), int(hi[1] - lo[1])), local)
        ids[lo[0]:hi[0], lo[1]:hi[1]][inside] = object_id
    return ids


def to_xy(ring: np.ndarray) -> np.ndarray:
    """(row, col) with centres at integers -> (x, y) with pixel (0, 0) covering 0..1."""
    return ring[:, ::-1] + 0.5


def from_xy(points_xy) -> np.ndarray:
    """(x, y) pixel-edge coordinates -> (row, col) with centres at integers."""
    points = np.asarray(points_xy, dtype=float).reshape(-1, 2)
    return points[:, ::-1] - 0.5
