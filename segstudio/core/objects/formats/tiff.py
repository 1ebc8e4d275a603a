"""Instance TIFFs: one integer per pixel, the object's id (uint16 while the ids fit, else uint32).

Fiji, napari, QuPath and cellpose read these as label images. The class of each object travels in the
TIFF's description (JSON), which other tools ignore.
"""
from __future__ import annotations

import io
import json
import os

import numpy as np
import tifffile

from segstudio.core.objects.formats.common import ObjectFileError, ObjectLayer, compact_ids
from segstudio.core.storage import atomic_write_bytes


def write(path: os.PathLike | str, layer: ObjectLayer) -> None:
    description = json.dumps({"segstudio_object_classes": {str(k): v for k, v in layer.names.items()}})
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, compact_ids(layer.ids), compression="zlib", description=description, metadata=None)
    atomic_write_bytes(path, buffer.getvalue())


def read(path: os.PathLike | str) -> ObjectLayer:
    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages.first
            ids = page.asarray()
            description = page.description or ""
    except (OSError, ValueError, tifffile.TiffFileError) as exc:
        raise ObjectFileError(path, f"not readable as a TIFF ({exc})") from exc
    if ids.ndim != 2 or ids.dtype.kind not in "ui":
        raise ObjectFileError(path, f"not an instance map (a {ids.ndim}-D {ids.dtype} image)")
    if ids.dtype.kind == "i":
        if ids.min(initial=0) < 0:
            raise ObjectFileError(path, "has negative object ids")
        ids = ids.astype(np.uint32)
    names: dict[int, str | None] = {}
    try:
        stored = json.loads(description).get("segstudio_object_classes", {})
        names = {int(k): v for k, v in stored.items()}
    except (ValueError, AttributeError):
        pass  # a label image from another tool: objects without classes
    return ObjectLayer(compact_ids(ids), names)
