"""COCO JSON (instance segmentation): one annotation per object, with its category.

An object without holes is stored as polygons (one per piece, x y pairs, pixel (0, 0) covering 0..1); an
object with holes as uncompressed run-length encoding over the whole image (column by column, starting
with background, as COCO's own tools read it), since COCO polygons cannot hold a hole.
"""
from __future__ import annotations

import json
import os

import numpy as np

from segstudio.core.labels import BACKGROUND_ID, ClassTable
from segstudio.core.objects.formats.common import ObjectFileError, ObjectLayer, compact_ids
from segstudio.core.objects.polygons import fill_rings, from_xy, object_shapes, to_xy
from segstudio.core.storage import atomic_write_text


def rle_encode(inside: np.ndarray) -> list[int]:
    """COCO's uncompressed run lengths: column-major, first run background (possibly 0 long)."""
    flat = inside.ravel(order="F").astype(np.int8)
    edges = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], edges, [flat.size]])
    runs = np.diff(bounds).tolist()
    return ([0] + runs) if flat.size and flat[0] else runs


def rle_decode(counts: list[int], shape: tuple[int, int]) -> np.ndarray:
    values = np.zeros(len(counts), bool)
    values[1::2] = True
    flat = np.repeat(values, np.asarray(counts, np.int64))
    if flat.size != shape[0] * shape[1]:
        raise ValueError(f"run lengths add up to {flat.size} pixels, not {shape[0]} x {shape[1]}")
    return flat.reshape(shape, order="F")


def write(path: os.PathLike | str, layer: ObjectLayer, classes: ClassTable, *, image_name: str = "") -> None:
    height, width = layer.shape
    categories = [{"id": c.id, "name": c.name} for c in classes if c.id != BACKGROUND_ID]
    category_of = {c["name"]: c["id"] for c in categories}
    annotations = []
    for shape in object_shapes(layer.ids):
        name = layer.names.get(shape.object_id)
        if name not in category_of:
            category_of[name] = max([0, *category_of.values()]) + 1
            categories.append({"id": category_of[name], "name": name or "object"})
        if shape.has_holes:
            inside = layer.ids == shape.object_id
            segmentation: object = {"counts": rle_encode(inside), "size": [height, width]}
        else:
            segmentation = [to_xy(part[0]).ravel().round(3).tolist() for part in shape.parts]
        every = np.concatenate([to_xy(r) for r in shape.rings()])
        (x0, y0), (x1, y1) = every.min(axis=0), every.max(axis=0)
        annotations.append({
            "id": shape.object_id, "image_id": 1, "category_id": category_of[name], "iscrowd": 0,
            "segmentation": segmentation, "area": int(np.count_nonzero(layer.ids == shape.object_id)),
            "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
        })
    data = {"images": [{"id": 1, "file_name": image_name, "height": height, "width": width}],
            "annotations": annotations, "categories": categories}
    atomic_write_text(path, json.dumps(data, separators=(",", ":")))


def read(path: os.PathLike | str) -> ObjectLayer:
    """The objects of the first image of a COCO file."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
        image = data["images"][0]
        shape = int(image["height"]), int(image["width"])
        names = {int(c["id"]): str(c["name"]) for c in data.get("categories", [])}
        ids = np.zeros(shape, np.uint32)
        layer_names: dict[int, str | None] = {}
        for annotation in data.get("annotations", []):
            if annotation.get("image_id", image["id"]) != image["id"]:
                continue
            segmentation = annotation["segmentation"]
            if isinstance(segmentation, dict):
                inside = rle_decode(segmentation["counts"], shape)
            else:
                inside = fill_rings(shape, [from_xy(polygon) for polygon in segmentation])
            object_id = len(layer_names) + 1
            ids[inside] = object_id
            layer_names[object_id] = names.get(annotation.get("category_id"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, IndexError, TypeError, ValueError) as exc:
        raise ObjectFileError(path, f"not readable as COCO JSON ({exc})") from exc
    return ObjectLayer(compact_ids(ids), layer_names)
