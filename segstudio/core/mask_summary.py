"""What a mask holds, in the words a user reads after Predict: objects per class and share of the image.

An object is a connected patch of one class; pixels touching at a corner belong to the same object
(8-connectivity), as a person counting nuclei on screen would see it. A model with a border output splits
touching objects; then the counts come from its objects (`object_counts`) instead of the patches.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import cv2
import numpy as np

from segstudio.core.labels import BACKGROUND_ID, ClassTable


@dataclass(frozen=True)
class ClassSummary:
    class_id: int
    name: str
    objects: int  # connected patches, or the objects given to summarise_mask
    pixels: int
    share: float  # of the whole image, 0..1


def count_objects(mask: np.ndarray, class_id: int) -> int:
    """Connected patches (8-connectivity) of `class_id` in `mask`."""
    present = mask == class_id
    if not present.any():
        return 0
    rows = np.flatnonzero(present.any(axis=1))
    cols = np.flatnonzero(present.any(axis=0))
    # Only the box holding the class is labelled: a few nuclei in a corner cost what the corner costs.
    box = present[rows[0]: rows[-1] + 1, cols[0]: cols[-1] + 1].view(np.uint8)
    count, _ = cv2.connectedComponents(box, connectivity=8)
    return int(count) - 1  # label 0 is everything that is not the class


def _class_pixels(mask: np.ndarray) -> np.ndarray:
    """Pixels per id. OpenCV's histogram takes 0.04 s on an 8192^2 mask where np.bincount takes 1.4 s."""
    if mask.dtype in (np.uint8, np.uint16) and mask.size:
        bins = 256 if mask.dtype == np.uint8 else int(mask.max()) + 1
        hist = cv2.calcHist([np.ascontiguousarray(mask)], [0], None, [bins], [0, bins])
        return np.rint(hist.ravel()).astype(np.int64)
    return np.bincount(mask.ravel().astype(np.int64), minlength=1)


def object_counts(mask: np.ndarray, ids: np.ndarray) -> dict[int, int]:
    """How many objects of an instance map `ids` (0: none) lie in each class of `mask`."""
    inside = ids > 0
    pairs = np.unique(mask[inside].astype(np.int64) << 32 | ids[inside].astype(np.int64))
    classes, counts = np.unique(pairs >> 32, return_counts=True)
    return {int(c): int(n) for c, n in zip(classes, counts)}


def summarise_mask(mask: np.ndarray, classes: ClassTable, objects: dict[int, int] | None = None
                   ) -> list[ClassSummary]:
    """One entry per foreground class present in the mask (ids without a class are named by number).

    ``objects``: objects per class found otherwise (split along a model's borders); else connected patches."""
    counts = _class_pixels(mask)
    total = max(1, mask.size)
    names = {c.id: c.name for c in classes}
    summary = []
    for class_id in np.flatnonzero(counts):
        class_id = int(class_id)
        if class_id == BACKGROUND_ID:
            continue
        pixels = int(counts[class_id])
        summary.append(ClassSummary(class_id, names.get(class_id, f"class {class_id}"),
                                    objects.get(class_id, 0) if objects is not None else count_objects(mask, class_id),
                                    pixels, pixels / total))
    return summary


def plural(name: str, count: int) -> str:
    """English plural of a class name for `count` objects: nucleus -> nuclei, mitosis -> mitoses, cell -> cells."""
    if count == 1 or not name:
        return name
    lower = name.lower()
    if lower.endswith("us"):
        return name[:-2] + "i"
    if lower.endswith("is"):
        return name[:-2] + "es"
    if lower.endswith(("s", "x", "ch", "sh")):
        return name + "es"
    if lower.endswith("y") and lower[-2:-1] not in "aeiou":
        return name[:-1] + "ies"
    return name + "s"


def percent(share: float) -> str:
    """A share as a short percentage; small shares keep one decimal so 0.3% does not read as 0%."""
    value = 100.0 * share
    if value == 0:
        return "0%"
    if value < 1:
        return f"{max(value, 0.1):.1f}%"
    return f"{value:.0f}%"


def describe_summary(summary: Iterable[ClassSummary]) -> str:
    """'142 nuclei (18% of the image), 3 mitoses (0.4%)'; 'nothing' for an empty mask."""
    parts = []
    for index, item in enumerate(summary):
        where = f"{percent(item.share)} of the image" if index == 0 else percent(item.share)
        parts.append(f"{item.objects} {plural(item.name, item.objects)} ({where})")
    return ", ".join(parts) if parts else "nothing"
