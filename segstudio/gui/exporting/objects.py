"""File > Export Objects: the current image's objects in a format QuPath, Fiji, napari or COCO tools read.

The format is the file type chosen in the save dialog. The objects are the document's own when the user has
found or edited them (View > Object View), else the mask's patches with touching ones split. Writing runs
in a worker thread, so a slide of thousands of objects does not freeze the window.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import QThread, Signal
from PySide6.QtWidgets import QFileDialog

from segstudio.core.objects.formats import FORMATS, layer_from_mask, output_name, write_objects


def name_filters() -> list[str]:
    return [f"{label} (*{suffix})" for label, suffix in FORMATS.values()]


class ObjectsExportThread(QThread):
    done = Signal(object, object)  # target path, error text or None

    def __init__(self, fmt: str, target: Path, doc, parent=None) -> None:
        super().__init__(parent)
        self.fmt, self.target = fmt, target
        self.mask = doc.mask.copy()
        self.ids = None if doc.model.objects is None else doc.model.objects.copy()
        self.boundary = getattr(doc.prediction, "boundary", None)
        self.classes = doc.classes.copy()
        self.pixels = doc.image.pixels
        self.pixel_size_um = doc.model.pixel_size_um
        self.image_name = doc.path.name

    def run(self) -> None:
        from segstudio.core.objects.instances import find_instances

        try:
            ids = self.ids if self.ids is not None else find_instances(self.mask, self.boundary)
            write_objects(self.fmt, self.target, layer_from_mask(ids, self.mask, self.classes), self.classes,
                          pixels=self.pixels, pixel_size_um=self.pixel_size_um, image_name=self.image_name)
        except (OSError, ValueError) as err:
            self.done.emit(self.target, str(err))
            return
        self.done.emit(self.target, int(np.max(ids, initial=0)))


def ask_target(window, doc) -> tuple[str, Path] | None:
    """The format and file the user picks in the save dialog, or None."""
    filters = name_filters()
    formats = list(FORMATS)
    suggestion = doc.path.with_name(output_name(doc.path.stem, "geojson"))
    path, chosen = QFileDialog.getSaveFileName(window, "Export Objects", str(suggestion), ";;".join(filters),
                                               filters[0])
    if not path:
        return None
    fmt = formats[filters.index(chosen)] if chosen in filters else "geojson"
    target = Path(path)
    if not target.name.endswith(FORMATS[fmt][1]):
        target = target.with_name(output_name(target.stem, fmt))
    return fmt, target
