"""QuPath GeoJSON: a FeatureCollection with one feature per object, its class as QuPath's classification.

Dragging the file onto an image in QuPath (0.3 or newer) adds the objects as annotations with their
classes. Coordinates are QuPath's: pixel (0, 0) covers x and y from 0 to 1. An object with holes is a
Polygon with inner rings; an object in several pieces a MultiPolygon. Reading accepts what QuPath writes
(File > Export objects as GeoJSON): a FeatureCollection, a list of features, one feature or one geometry.
Points and lines have no area and are counted as skipped.
"""
from __future__ import annotations

import json
import os

import numpy as np

from segstudio.core.objects.formats.common import ObjectFileError, ObjectLayer, compact_ids
from segstudio.core.objects.polygons import from_xy, object_shapes, paint_shapes, to_xy
from segstudio.core.storage import atomic_write_text

_MAX_BYTES = 1 << 30  # a GeoJSON this big is not a set of annotations for one image


def _ring_coordinates(ring: np.ndarray) -> list[list[float]]:
    xy = to_xy(ring)
    xy = np.vstack([xy, xy[:1]])  # GeoJSON rings repeat their first point at the end
    return xy.tolist()


def feature(object_id: int, parts: list[list[np.ndarray]], name: str | None, colour) -> dict:
    polygons = [[_ring_coordinates(ring) for ring in part] for part in parts]
    if len(polygons) == 1:
        geometry = {"type": "Polygon", "coordinates": polygons[0]}
    else:
        geometry = {"type": "MultiPolygon", "coordinates": polygons}
    properties: dict = {"objectType": "annotation", "object_id": int(object_id)}
    if name is not None:
        properties["classification"] = {"name": name, "color": list(colour) if colour else [255, 0, 0]}
    return {"type": "Feature", "geometry": geometry, "properties": properties}


def write(path: os.PathLike | str, layer: ObjectLayer, colours: dict[str, tuple[int, int, int]]) -> None:
    features = []
    for shape in object_shapes(layer.ids):
        name = layer.names.get(shape.object_id)
        features.append(feature(shape.object_id, shape.parts, name, colours.get(name)))
    atomic_write_text(path, json.dumps({"type": "FeatureCollection", "features": features}, separators=(",", ":")))


def _features(data) -> list[dict]:
    if isinstance(data, list):
        return [f for f in data if isinstance(f, dict)]
    if not isinstance(data, dict):
        return []
    if data.get("type") == "FeatureCollection":
        return [f for f in data.get("features") or [] if isinstance(f, dict)]
    if data.get("type") == "Feature":
        return [data]
    return [{"type": "Feature", "geometry": data, "properties": {}}]


def _class_name(properties: dict) -> str | None:
    classification = properties.get("classification")
    if isinstance(classification, dict):
        name = classification.get("name")
        return str(name) if name else None
    if isinstance(classification, str) and classification:  # QuPath 0.2 wrote the name alone
        return classification
    return None


def _polygons(geometry: dict) -> list[list]:
    kind = geometry.get("type")
    coordinates = geometry.get("coordinates") or []
    if kind == "Polygon":
        return [coordinates]
    if kind == "MultiPolygon":
        return list(coordinates)
    if kind == "GeometryCollection":
        return [p for g in geometry.get("geometries") or [] if isinstance(g, dict) for p in _polygons(g)]
    return []


def read(path: os.PathLike | str, shape: tuple[int, int]) -> ObjectLayer:
    """The objects of a GeoJSON file, on an image of ``shape`` (height, width); later features cover earlier
    ones where they overlap. ``layer.skipped`` counts features without an area (points, lines)."""
    try:
        if os.path.getsize(path) > _MAX_BYTES:
            raise ObjectFileError(path, "larger than 1 GiB: not a GeoJSON of annotations for one image")
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ObjectFileError(path, f"not readable as GeoJSON ({exc})") from exc
    shapes, names, skipped = [], {}, 0
    for number, item in enumerate(_features(data), start=1):
        geometry = item.get("geometry")
        polygons = _polygons(geometry) if isinstance(geometry, dict) else []
        try:
            rings = [from_xy(ring) for polygon in polygons for ring in polygon if len(ring) >= 3]
        except (TypeError, ValueError) as exc:
            raise ObjectFileError(path, f"feature {number} has coordinates that are not numbers ({exc})") from exc
        if not rings:
            skipped += 1
            continue
        object_id = len(shapes) + 1
        shapes.append((object_id, rings))
        names[object_id] = _class_name(item.get("properties") or {})
    ids = compact_ids(paint_shapes(shape, shapes))
    layer = ObjectLayer(ids, names)
    layer.skipped = skipped
    return layer
