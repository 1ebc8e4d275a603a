"""Editing objects one by one: split with a cut line, merge two, delete one, paint a new one; and keeping
the instance map in step with edits made to the class mask.

Each edit returns an :class:`ObjectDiff` (not yet applied): the bounding box of what changed, with the old
and new pixels of the class mask, the hand-painted map and the instance map, so undo restores all three
exactly. None means the edit changes nothing (a click on the background, a cut that does not cross).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage

from segstudio.core.edits import Diff

__all__ = ["ObjectDiff", "object_at", "delete_object", "merge_objects", "split_object", "new_object", "follow_mask"]


@dataclass
class ObjectDiff(Diff):
    """A Diff that also carries the instance map's old and new pixels of its rectangle."""

    ids_old: np.ndarray | None = None
    ids_new: np.ndarray | None = None

    def apply_ids(self, ids: np.ndarray) -> None:
        changed = self.ids_old != self.ids_new
        ids[self.y0:self.y1, self.x0:self.x1][changed] = self.ids_new[changed]

    def revert_ids(self, ids: np.ndarray) -> None:
        changed = self.ids_old != self.ids_new
        ids[self.y0:self.y1, self.x0:self.x1][changed] = self.ids_old[changed]

    def holds_ids(self, ids: np.ndarray) -> bool:
        changed = self.ids_old != self.ids_new
        return bool(np.array_equal(ids[self.y0:self.y1, self.x0:self.x1][changed], self.ids_new[changed]))


def object_at(ids: np.ndarray, y: float, x: float) -> int:
    """The id of the object under pixel (y, x); 0 for background or outside the image."""
    y, x = int(round(y)), int(round(x))
    if not (0 <= y < ids.shape[0] and 0 <= x < ids.shape[1]):
        return 0
    return int(ids[y, x])


def _box_of(ids: np.ndarray, object_ids) -> tuple[slice, slice] | None:
    hit = np.isin(ids, list(object_ids))
    rows, cols = np.flatnonzero(hit.any(axis=1)), np.flatnonzero(hit.any(axis=0))
    if rows.size == 0:
        return None
    return slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1)


def _diff(box, mask, hand, ids, new_mask, new_hand, new_ids) -> ObjectDiff:
    return ObjectDiff(box[0].start, box[1].start, mask[box].copy(), new_mask, hand[box].copy(), new_hand,
                      ids[box].copy(), new_ids)


def delete_object(ids, mask, hand, y, x) -> ObjectDiff | None:
    """Remove the one object under (y, x) (not the whole touching cluster): its pixels become background."""
    target = object_at(ids, y, x)
    box = _box_of(ids, [target]) if target else None
    if box is None:
        return None
    inside = ids[box] == target
    new_mask = np.where(inside, 0, mask[box]).astype(mask.dtype)
    return _diff(box, mask, hand, ids, new_mask, hand[box] | inside, np.where(inside, 0, ids[box]))


def merge_objects(ids, mask, hand, start_yx, end_yx) -> ObjectDiff | None:
    """Join the object under ``end_yx`` into the one under ``start_yx`` (it takes that one's id and class)."""
    keep, gone = object_at(ids, *start_yx), object_at(ids, *end_yx)
    if not keep or not gone or keep == gone:
        return None
    box = _box_of(ids, [keep, gone])
    keep_class = mask[box][ids[box] == keep][0]
    joining = ids[box] == gone
    new_mask = np.where(joining, keep_class, mask[box]).astype(mask.dtype)
    return _diff(box, mask, hand, ids, new_mask, hand[box] | joining, np.where(joining, keep, ids[box]))


def split_object(ids, mask, hand, start_yx, end_yx, *, width: int = 1) -> ObjectDiff | None:
    """Cut every object the line from ``start_yx`` to ``end_yx`` crosses from edge to edge: the largest
    piece keeps the id, the others get new ids. The class mask does not change; the pixels under the line
    join the piece beside them. None when the line cuts nothing in two."""
    line = np.zeros(ids.shape, np.uint8)
    (y0, x0), (y1, x1) = start_yx, end_yx
    cv2.line(line, (int(round(x0)), int(round(y0))), (int(round(x1)), int(round(y1))), 1, max(1, int(width)))
    crossed = [int(i) for i in np.unique(ids[line > 0]) if i != 0]
    if not crossed:
        return None
    box = _box_of(ids, crossed)
    local = ids[box].copy()
    next_id = int(ids.max()) + 1
    cut = line[box] > 0
    for object_id in crossed:
        inside = local == object_id
        count, pieces = cv2.connectedComponents((inside & ~cut).astype(np.uint8), connectivity=4)
        if count <= 2:
            continue  # the line does not go right across this object
        sizes = np.bincount(pieces.ravel(), minlength=count)[1:]
        order = np.argsort(-sizes) + 1  # largest first: it keeps the object's id
        new_ids = np.zeros(count, np.int64)
        new_ids[order[0]] = object_id
        new_ids[order[1:]] = np.arange(next_id, next_id + count - 2)
        next_id += count - 2
        # Pixels under the line take the id of the nearest piece.
        _, nearest = ndimage.distance_transform_edt(pieces == 0, return_indices=True)
        owner = pieces[nearest[0], nearest[1]]
        local[inside] = new_ids[owner[inside]]
    if np.array_equal(local, ids[box]):
        return None
    return _diff(box, mask, hand, ids, mask[box].copy(), hand[box].copy(), local.astype(ids.dtype))


def new_object(ids, mask, hand, points_yx, radius: float, class_id: int) -> ObjectDiff | None:
    """A new object with a fresh id, painted along ``points_yx`` with a round brush of ``radius`` over the
    background only (existing objects keep their pixels)."""
    points = np.asarray(points_yx, float).reshape(-1, 2)
    if points.size == 0:
        return None
    r = max(0, int(round(radius)))
    lo = np.maximum(np.floor(points.min(axis=0)).astype(int) - r, 0)
    hi = np.minimum(np.ceil(points.max(axis=0)).astype(int) + r + 1, ids.shape)
    if np.any(hi <= lo):
        return None
    box = slice(int(lo[0]), int(hi[0])), slice(int(lo[1]), int(hi[1]))
    brush = np.zeros((box[0].stop - box[0].start, box[1].stop - box[1].start), np.uint8)
    local = np.round(points - lo).astype(np.int32)[:, ::-1]
    if len(local) == 1:
        cv2.circle(brush, tuple(int(v) for v in local[0]), r, 1, -1)
    else:
        cv2.polylines(brush, [local], False, 1, 2 * r + 1)
    painted = (brush > 0) & (ids[box] == 0)
    if not painted.any():
        return None
    fresh = int(ids.max()) + 1
    new_mask = np.where(painted, class_id, mask[box]).astype(mask.dtype)
    return _diff(box, mask, hand, ids, new_mask, hand[box] | painted, np.where(painted, fresh, ids[box]))


def follow_mask(ids: np.ndarray, mask: np.ndarray, y0: int, x0: int, y1: int, x1: int) -> None:
    """After a class edit in rows y0:y1, columns x0:x1: background pixels leave their objects, and new
    foreground pixels join the object of their class they touch (a new object when they touch none).
    Changes ``ids`` in place."""
    H, W = ids.shape
    ya, xa, yb, xb = max(0, y0 - 1), max(0, x0 - 1), min(H, y1 + 1), min(W, x1 + 1)
    local_ids, local_mask = ids[ya:yb, xa:xb], mask[ya:yb, xa:xb]
    local_ids[local_mask == 0] = 0
    orphans = (local_mask != 0) & (local_ids == 0)
    if not orphans.any():
        return
    count, patches = cv2.connectedComponents(orphans.astype(np.uint8), connectivity=8)
    next_id = int(ids.max()) + 1
    for patch in range(1, count):
        inside = patches == patch
        ring = cv2.dilate(inside.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool) & ~inside
        class_id = local_mask[inside][0]
        neighbours = local_ids[ring & (local_mask == class_id) & (local_ids != 0)]
        if neighbours.size:
            local_ids[inside] = np.bincount(neighbours).argmax()
        else:
            local_ids[inside] = next_id
            next_id += 1
