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

from segstudio.core.objects.formats.common import ObjectFileError, ObjectLayer, ObjectsCancelled, compact_ids
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


_GEOMETRIES = {"Polygon", "MultiPolygon", "GeometryCollection", "Point", "MultiPoint", "LineString",
               "MultiLineString"}


def _describe(value) -> str:
    if isinstance(value, dict):
        kind = value.get("type")
        return f"an object of type {kind!r}" if kind else f"an object with the keys {', '.join(map(str, value))}"
    return f"a {type(value).__name__}"


def _features(path, data) -> list:
    """The features of what QuPath writes; anything else is refused, saying what was found instead."""
    if isinstance(data, list):
        return data
    if isinstance(data, dict):
        kind = data.get("type")
        if kind == "FeatureCollection":
            features = data.get("features")
            if not isinstance(features, list):
                raise ObjectFileError(path, "its FeatureCollection has no list of features")
            return features
        if kind == "Feature":
            return [data]
        if kind in _GEOMETRIES:
            return [{"type": "Feature", "geometry": data, "properties": {}}]
    raise ObjectFileError(path, f"not GeoJSON: expected a FeatureCollection, a Feature or a geometry, found "
                                f"{_describe(data)}")


def _class_name(properties: dict) -> str | None:
    classification = properties.get("classification")
    if isinstance(classification, dict):
        name = classification.get("name")
        return str(name) if name else None
    if isinstance(classification, str) and classification:  # QuPath 0.2 wrote the name alone
        return classification
    return None


def _polygons(path, number: int, geometry: dict) -> list:
    kind = geometry.get("type")
    if kind not in _GEOMETRIES:
        raise ObjectFileError(path, f"feature {number} has a geometry of unknown type {kind!r}")
    coordinates = geometry.get("coordinates") or []
    if kind in ("Polygon", "MultiPolygon") and not isinstance(coordinates, list):
        raise ObjectFileError(path, f"feature {number}'s {kind} has no list of coordinates")
    if kind == "Polygon":
        return [coordinates]
    if kind == "MultiPolygon":
        return list(coordinates)
    if kind == "GeometryCollection":
        members = geometry.get("geometries") or []
        return [p for g in members if isinstance(g, dict) for p in _polygons(path, number, g)]
    return []  # points and lines have no area


def _rings(path, number: int, item) -> list[np.ndarray]:
    """The rings of one feature in (row, col); [] for a feature without an area."""
    if not isinstance(item, dict):
        raise ObjectFileError(path, f"item {number} is {_describe(item)}, not a GeoJSON feature")
    geometry = item.get("geometry")
    if geometry is None:
        return []  # GeoJSON allows a feature without a geometry
    if not isinstance(geometry, dict):
        raise ObjectFileError(path, f"feature {number}'s geometry is {_describe(geometry)}")
    rings = []
    for polygon in _polygons(path, number, geometry):
        if not isinstance(polygon, list):
            raise ObjectFileError(path, f"feature {number} has a polygon that is not a list of rings")
        for ring in polygon:
            try:
                points = np.asarray(ring, dtype=float)
            except (TypeError, ValueError):
                points = np.zeros((0, 0))
            if points.ndim != 2 or points.shape[1] not in (2, 3):
                raise ObjectFileError(path, f"feature {number} has a ring that is not a list of [x, y] points")
            if not np.isfinite(points).all():
                raise ObjectFileError(path, f"feature {number} has coordinates that are not finite numbers")
            if len(points) >= 3:
                rings.append(from_xy(points[:, :2]))
    return rings


def _load(path):
    try:
        if os.path.getsize(path) > _MAX_BYTES:
            raise ObjectFileError(path, "larger than 1 GiB: not a GeoJSON of annotations for one image")
        with open(path, "rb") as handle:
            raw = handle.read()
    except OSError as exc:
        raise ObjectFileError(path, f"cannot be read ({exc.strerror or exc})") from exc
    try:
        return json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise ObjectFileError(path, "not GeoJSON: not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise ObjectFileError(path, f"not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from None
    except RecursionError:
        raise ObjectFileError(path, "not GeoJSON: nested too deeply") from None


def read(path: os.PathLike | str, shape: tuple[int, int], *, progress=None, cancelled=None) -> ObjectLayer:
    """The objects of a GeoJSON file, on an image of ``shape`` (height, width); later features cover earlier
    ones where they overlap. ``layer.skipped`` counts features without an area (points, lines).

    ``progress(done, total)`` is told how far reading and painting the features have come, and the reading
    stops with ObjectsCancelled once ``cancelled()`` answers True. A file that is not GeoJSON, or a feature
    that is malformed, raises ObjectFileError naming the file, the feature and what is wrong."""
    features = _features(path, _load(path))
    total = len(features)
    step = max(1, total // 200)  # about 200 reports, however many features

    def tick(done: int) -> None:
        if cancelled is not None and cancelled():
            raise ObjectsCancelled()
        if progress is not None and (done % step == 0 or done == 2 * total):
            progress(done, 2 * total)

    shapes, names, skipped = [], {}, 0
    for number, item in enumerate(features, start=1):
        tick(number)
        rings = _rings(path, number, item)
        if not rings:
            skipped += 1
            continue
        object_id = len(shapes) + 1
        shapes.append((object_id, rings))
        properties = item.get("properties")
        names[object_id] = _class_name(properties if isinstance(properties, dict) else {})

    def painted():
        for done, entry in enumerate(shapes, start=1):
            tick(total + done * total // max(1, len(shapes)))
            yield entry

    ids = compact_ids(paint_shapes(shape, painted()))
    if shapes and not ids.any():
        raise ObjectFileError(path, f"none of its {len(shapes)} objects lies on the image ({shape[1]} x {shape[0]} "
                                    "pixels): it may belong to another image")
    layer = ObjectLayer(ids, names)
    layer.skipped = skipped
    return layer
