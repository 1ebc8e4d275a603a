"""File > Import Objects: objects from QuPath, Fiji or another tool painted into the current mask as one
undoable step (marked as painted by hand, so Predict keeps them)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from segstudio.core.objects.editing import ObjectDiff
from segstudio.core.objects.formats import ObjectFileError, layer_to_mask, read_objects


def import_objects(controller, path: Path) -> bool:
    doc = controller.doc
    try:
        layer = read_objects(path, shape=doc.mask.shape)
    except (ObjectFileError, OSError) as err:
        controller.window.show_error("Objects not imported", str(err))
        return False
    if layer.ids.shape != doc.mask.shape:
        controller.window.show_error("Objects not imported", f"{path.name} is {layer.ids.shape[1]} x "
                                     f"{layer.ids.shape[0]} pixels; the image is {doc.mask.shape[1]} x "
                                     f"{doc.mask.shape[0]}.")
        return False
    mask, classes = layer_to_mask(layer, doc.classes)
    if classes != doc.classes:
        controller.classes_offered.emit(classes)
    inside = layer.ids > 0
    rows, cols = np.flatnonzero(inside.any(axis=1)), np.flatnonzero(inside.any(axis=0))
    if rows.size == 0:
        controller.window.statusBar().showMessage(f"{path.name} holds no objects with an area.", 8000)
        return False
    box = slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1)
    here = inside[box]
    new_mask = np.where(here, mask[box], doc.mask[box]).astype(doc.mask.dtype)
    ids_old = ids_new = None
    if doc.model.objects is not None:
        ids_old = doc.model.objects[box].copy()
        offset = int(doc.model.objects.max())
        ids_new = np.where(here, layer.ids[box].astype(np.int64) + offset, ids_old).astype(np.uint32)
    diff = ObjectDiff(box[0].start, box[1].start, doc.mask[box].copy(), new_mask, doc.hand[box].copy(),
                      doc.hand[box] | here, ids_old, ids_new)
    doc.push_diff(diff, f"Import Objects from {path.name}")
    count = len(np.unique(layer.ids[box][here]))
    skipped = getattr(layer, "skipped", 0)
    note = f" ({skipped} without an area skipped)" if skipped else ""
    controller.window.statusBar().showMessage(f"{count} objects imported from {path.name}{note}", 8000)
    return True
