"""What every object format shares: the layer that travels, its error, and the way to and from a class mask."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from segstudio.core.labels import BACKGROUND_ID, ClassTable
from segstudio.core.objects.instances import ids_dtype, object_classes
from segstudio.core.text import printable


class ObjectFileError(ValueError):
    """A file of objects that cannot be written or read; str() names the file and the reason."""

    def __init__(self, path: os.PathLike | str, reason: str):
        super().__init__(f"{printable(Path(path))}: {reason}")
        self.path = Path(path)
        self.reason = reason


class ObjectsCancelled(Exception):
    """Reading stopped because the user asked (a ``cancelled()`` check answered True)."""


@dataclass
class ObjectLayer:
    """An instance map (0: background) and the class name of each object id (None: no class given)."""

    ids: np.ndarray
    names: dict[int, str | None] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.ids.shape)


def layer_from_mask(ids: np.ndarray, mask: np.ndarray, classes: ClassTable) -> ObjectLayer:
    """The objects of ``ids`` with the class names their pixels have in ``mask``."""
    class_of = object_classes(ids, mask)
    known = {c.id: c.name for c in classes}
    present = np.flatnonzero(np.bincount(ids.ravel(), minlength=class_of.size))
    names = {int(i): known.get(int(class_of[i]), f"class {class_of[i]}") for i in present if i != 0}
    return ObjectLayer(np.asarray(ids), names)


def layer_to_mask(layer: ObjectLayer, classes: ClassTable) -> tuple[np.ndarray, ClassTable]:
    """A class mask for ``layer``: each object painted with the id of its class's name in ``classes``.

    Returns the mask and the class table, which is a copy with the classes the file names and
    ``classes`` lacks added (so nothing in the file is dropped); objects without a class take the first
    class after the background.
    """
    table = classes.copy()
    by_name = {c.name: c.id for c in table}
    fallback = next((c.id for c in table if c.id != BACKGROUND_ID), None)
    lut = np.zeros(int(layer.ids.max(initial=0)) + 1, np.int64)
    for object_id, name in layer.names.items():
        if name is None:
            if fallback is None:
                fallback = table.add("object").id
            lut[object_id] = fallback
            continue
        if name not in by_name:
            by_name[name] = table.add(name).id
        lut[object_id] = by_name[name]
    unnamed = np.setdiff1d(np.unique(layer.ids), [0, *layer.names.keys()])
    if unnamed.size:
        if fallback is None:
            fallback = table.add("object").id
        lut[unnamed] = fallback
    return lut[layer.ids].astype(table.mask_dtype), table


def compact_ids(ids: np.ndarray) -> np.ndarray:
    """``ids`` in the smallest unsigned type that holds them."""
    return ids.astype(ids_dtype(int(ids.max(initial=0))), copy=False)
