"""Objects in the files other tools read: QuPath GeoJSON, ImageJ/Fiji ROI sets, COCO JSON, instance TIFFs
and OME-Zarr labels (napari). Every format goes mask -> file -> mask unchanged (tests/core/objects).

An :class:`ObjectLayer` is what travels: an instance map and the class name of each object. Writers take
one; readers give one back, and :func:`layer_to_mask` turns it into a class mask with the document's
class table (classes the file names and the table lacks are added).
"""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from segstudio.core.labels import ClassTable
from segstudio.core.objects.formats.common import (
    ObjectFileError,
    ObjectLayer,
    ObjectsCancelled,
    layer_from_mask,
    layer_to_mask,
)

__all__ = ["FORMATS", "ObjectFileError", "ObjectLayer", "ObjectsCancelled", "layer_from_mask", "layer_to_mask",
           "write_objects", "read_objects", "output_name", "format_of"]

#: format -> (what users call it, the name added to an image's stem)
FORMATS: dict[str, tuple[str, str]] = {
    "geojson": ("QuPath GeoJSON", ".geojson"),
    "imagej": ("ImageJ/Fiji ROI set", "_rois.zip"),
    "coco": ("COCO JSON", "_coco.json"),
    "instances": ("Instance TIFF (object ids)", "_objects.tif"),
    "omezarr": ("OME-Zarr with labels (napari)", ".ome.zarr"),
}


def output_name(image_stem: str, fmt: str) -> str:
    return image_stem + FORMATS[fmt][1]


def format_of(path: os.PathLike | str) -> str:
    """Which format a file is, from its name."""
    name = Path(path).name.lower()
    for fmt, suffix in (("omezarr", ".zarr"), ("geojson", ".geojson"), ("imagej", ".zip"), ("imagej", ".roi"),
                        ("coco", "_coco.json"), ("geojson", ".json"), ("instances", ".tif"),
                        ("instances", ".tiff")):
        if name.endswith(suffix):
            return fmt
    raise ObjectFileError(path, "not a file of objects (GeoJSON, ROI zip, COCO JSON, TIFF or OME-Zarr)")


def write_objects(fmt: str, path: os.PathLike | str, layer: ObjectLayer, classes: ClassTable, *,
                  pixels: np.ndarray | None = None, pixel_size_um: float | None = None,
                  image_name: str = "") -> None:
    """Write ``layer`` to ``path`` in format ``fmt`` (one of FORMATS), atomically."""
    from segstudio.core.objects.formats import coco, geojson, imagej, omezarr, tiff

    colours = {c.name: c.color for c in classes}
    if fmt == "geojson":
        geojson.write(path, layer, colours)
    elif fmt == "imagej":
        imagej.write(path, layer)
    elif fmt == "coco":
        coco.write(path, layer, classes, image_name=image_name)
    elif fmt == "instances":
        tiff.write(path, layer)
    elif fmt == "omezarr":
        omezarr.write(path, layer, colours, pixels=pixels, pixel_size_um=pixel_size_um, name=image_name)
    else:
        raise ValueError(f"unknown format {fmt!r} (known: {', '.join(FORMATS)})")


def read_objects(path: os.PathLike | str, shape: tuple[int, int] | None = None, *,
                 progress: Callable[[int, int], None] | None = None,
                 cancelled: Callable[[], bool] | None = None) -> ObjectLayer:
    """Read objects from ``path``; ``shape`` (the image's height and width) is needed for the formats that
    do not record it (GeoJSON, ImageJ ROIs). GeoJSON, the format of large annotation sets, reports
    ``progress(done, total)`` per object and stops with ObjectsCancelled once ``cancelled()`` is True."""
    from segstudio.core.objects.formats import coco, geojson, imagej, omezarr, tiff

    fmt = format_of(path)
    if fmt in ("geojson", "imagej") and shape is None:
        raise ObjectFileError(path, "the image size is needed to read this file")
    readers = {"geojson": lambda: geojson.read(path, shape, progress=progress, cancelled=cancelled),
               "imagej": lambda: imagej.read(path, shape),
               "coco": lambda: coco.read(path), "instances": lambda: tiff.read(path),
               "omezarr": lambda: omezarr.read(path)}
    return readers[fmt]()
