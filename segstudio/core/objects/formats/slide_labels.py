"""A whole slide's labels in the files other tools read, written chunk by chunk: nothing slide-sized is held.

OME-Zarr (NGFF 0.4, zarr format 2, the layout of omezarr.py): ``labels/<name>`` is a multiscale label
image, level 0 the full-resolution class ids and each further level every second pixel of the one before
(nearest, so ids stay ids) down to LABEL_SMALLEST a side, with the micrometres per pixel as each level's
scale and the class names and colours under "image-label". Only chunks holding labels are written; the
folder appears under its name once complete. napari opens ``<file>.ome.zarr/labels/<name>`` with the
napari-ome-zarr plugin (a labels layer over the slide opened beside it).

GeoJSON for QuPath: one feature per connected patch of a class, in level-0 slide coordinates, found tile
by tile. Each tile is read with a margin around it. An object under MARGIN pixels in both directions (a
nucleus) is written whole by the one tile holding the top left corner of its bounding box, so one
crossing a tile border comes out once and uncut. A larger region crossing a tile border (a tissue class
spanning the slide) is written as one piece per tile, cut at tile borders, with ``"piece": true`` among
its properties; QuPath can merge the pieces (Objects > Annotations > Merge selected annotations).
Features stream into the file as they are found.
"""
from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np

from segstudio.core.objects.formats.common import ObjectFileError
from segstudio.core.objects.formats.geojson import feature
from segstudio.core.objects.formats.omezarr import _SLASH, _multiscales, _space_axes, _zarr, build_in_place, image_label
from segstudio.core.objects.polygons import object_shapes
from segstudio.core.storage import atomic_open

CHUNK = 1024  # zarr chunk of every level
LEVEL_FACTOR = 2
LABEL_SMALLEST = 1024  # levels stop once one fits in this many pixels a side
TILE = 1024  # GeoJSON: the part of the slide each step owns (a window of 1536^2 with its margin: ~20 MB)
MARGIN = 256  # ... read with this much around it, so objects crossing a tile border come out whole

Progress = Callable[[int, int], None]
Cancel = Callable[[], bool]


class ExportCancelled(Exception):
    """The export was stopped; nothing was written under the target's name."""


def _level_count(height: int, width: int) -> int:
    levels = 1
    while max(height, width) / LEVEL_FACTOR ** (levels - 1) > LABEL_SMALLEST:
        levels += 1
    return levels


def _chunks(height: int, width: int, size: int) -> Iterator[tuple[int, int]]:
    for y in range(0, height, size):
        for x in range(0, width, size):
            yield y, x


def write_omezarr(path: os.PathLike | str, labels, names: dict[int, str | None],
                  colours: dict[int, tuple[int, int, int]], *, pixel_size_um: float | None = None,
                  name: str = "labels", progress: Progress | None = None, cancel: Cancel | None = None) -> int:
    """Write ``labels`` (a core.label_store.LabelStore, or anything with height, width, dtype, read() and
    any_in()) as an OME-Zarr label pyramid; returns the number of levels."""
    levels = _level_count(labels.height, labels.width)

    def build(folder: Path) -> None:
        zarr = _zarr()
        root = zarr.open_group(str(folder), mode="w", zarr_format=2)
        group = root.create_group("labels")
        group.attrs["labels"] = [name]
        group = group.create_group(name)
        size = float(pixel_size_um or 1.0)
        multiscales = _multiscales(name, _space_axes(pixel_size_um), [size, size], levels, LEVEL_FACTOR)
        multiscales[0]["type"] = "nearest"  # the downscaling method, as NGFF asks
        multiscales[0]["metadata"] = {"description": "every second pixel of the level above, so ids stay ids"}
        group.attrs["multiscales"] = multiscales
        group.attrs["image-label"] = image_label(names, colours)
        _write_levels(group, labels, levels, progress, cancel)

    try:
        build_in_place(path, build)
    except OSError as exc:
        raise ObjectFileError(path, f"cannot write ({exc.strerror or exc})") from exc
    return levels


def _write_levels(group, labels, levels: int, progress: Progress | None, cancel: Cancel | None) -> None:
    height, width = labels.height, labels.width
    shapes = [(math.ceil(height / LEVEL_FACTOR ** k), math.ceil(width / LEVEL_FACTOR ** k)) for k in range(levels)]
    arrays = [group.create_array(str(k), shape=shape, dtype=labels.dtype, chunks=(CHUNK, CHUNK), fill_value=0,
                                 chunk_key_encoding=_SLASH, config={"write_empty_chunks": False})
              for k, shape in enumerate(shapes)]
    total = sum(math.ceil(h / CHUNK) * math.ceil(w / CHUNK) for h, w in shapes)
    done = 0
    written: set[tuple[int, int]] = set()  # chunks of the level below that hold labels
    for y, x in _chunks(height, width, CHUNK):
        _check(cancel)
        h, w = min(CHUNK, height - y), min(CHUNK, width - x)
        if labels.any_in(y, x, h, w):
            block = labels.read(y, x, h, w)
            if block.any():
                arrays[0][y:y + h, x:x + w] = block
                written.add((y // CHUNK, x // CHUNK))
        done += 1
        _tell(progress, done, total)
        if x + CHUNK >= width:
            _forget(labels)
    for k in range(1, levels):
        below, above = arrays[k - 1], arrays[k]
        now: set[tuple[int, int]] = set()
        (h_k, w_k), step = shapes[k], CHUNK * LEVEL_FACTOR
        for y, x in _chunks(h_k, w_k, CHUNK):
            _check(cancel)
            cy, cx = y // CHUNK, x // CHUNK
            sources = {(cy * LEVEL_FACTOR + i, cx * LEVEL_FACTOR + j) for i in range(LEVEL_FACTOR)
                       for j in range(LEVEL_FACTOR)}
            if sources & written:
                block = np.asarray(below[y * LEVEL_FACTOR:y * LEVEL_FACTOR + step,
                                         x * LEVEL_FACTOR:x * LEVEL_FACTOR + step])[::LEVEL_FACTOR, ::LEVEL_FACTOR]
                if block.any():
                    above[y:y + block.shape[0], x:x + block.shape[1]] = block
                    now.add((cy, cx))
            done += 1
            _tell(progress, done, total)
        written = now


def _forget(labels) -> None:
    """A label store keeps the chunks it read: drop them after each row of the export (they are on disk)."""
    forget = getattr(labels, "forget_saved", None)
    if forget is not None:
        forget()


def _check(cancel: Cancel | None) -> None:
    if cancel is not None and cancel():
        raise ExportCancelled()


def _tell(progress: Progress | None, done: int, total: int) -> None:
    if progress is not None:
        progress(done, total)


def read_omezarr(path: os.PathLike | str, name: str = "labels", level: int = 0) -> np.ndarray:
    """One level of a label pyramid written by write_omezarr (whole, for tests and small slides)."""
    zarr = _zarr()
    group = zarr.open_group(str(Path(path) / "labels" / name), mode="r")
    return np.asarray(group[str(level)][...])


# --- GeoJSON ---------------------------------------------------------------------------------------------
def write_geojson(path: os.PathLike | str, labels, names: dict[int, str | None],
                  colours: dict[int, tuple[int, int, int]], *, progress: Progress | None = None,
                  cancel: Cancel | None = None) -> int:
    """Write the objects of ``labels`` as a QuPath FeatureCollection; returns the number of features."""
    tiles = list(_chunks(labels.height, labels.width, TILE))
    count = 0
    try:
        with atomic_open(path, "w") as out:
            out.write('{"type":"FeatureCollection","features":[')
            for index, (y, x) in enumerate(tiles):
                _check(cancel)
                for item in _tile_features(labels, y, x, names, colours):
                    out.write(("," if count else "") + json.dumps(item, separators=(",", ":")))
                    count += 1
                _tell(progress, index + 1, len(tiles))
                _forget(labels)  # the margins are read again: cheaper than holding a row of windows
            out.write("]}")
    except OSError as exc:
        raise ObjectFileError(path, f"cannot write ({exc.strerror or exc})") from exc
    return count


def _tile_features(labels, y: int, x: int, names, colours) -> Iterator[dict]:
    height, width = labels.height, labels.width
    th, tw = min(TILE, height - y), min(TILE, width - x)
    wy, wx = max(0, y - MARGIN), max(0, x - MARGIN)
    wh, ww = min(height, y + th + MARGIN) - wy, min(width, x + tw + MARGIN) - wx
    if not labels.any_in(y, x, th, tw):
        return
    window = labels.read(wy, wx, wh, ww)
    core = (y - wy, x - wx, th, tw)
    present = np.bincount(window[core[0]:core[0] + th, core[1]:core[1] + tw].ravel())  # faster than np.unique
    for value in np.flatnonzero(present[1:]) + 1:
        yield from _class_features(window, int(value), (wy, wx), core, (height, width), names, colours)


def _class_features(window, value: int, origin, core, slide_shape, names, colours) -> Iterator[dict]:
    """The features of one class that this tile writes.

    An object under MARGIN pixels in both directions ("small") lies whole inside the window of the tile
    holding its top left corner, and that tile alone writes it. A larger one is written by every tile it
    covers, as the part inside that tile, unless it lies inside one tile entirely. A component touching a
    window edge that is not the slide's edge and reaching into the tile is more than MARGIN pixels long,
    so it is large: each tile decides alike without seeing the others.
    """
    wy, wx = origin
    cy, cx, th, tw = core
    count, ids, stats, _centroids = cv2.connectedComponentsWithStats((window == value).view(np.uint8), connectivity=8)
    wh, ww = window.shape
    cut = (wy > 0, wx > 0, wy + wh < slide_shape[0], wx + ww < slide_shape[1])  # top, left, bottom, right
    in_core = np.bincount(ids[cy:cy + th, cx:cx + tw].ravel(), minlength=count) > 0
    in_core[0] = False  # the other pixels
    name, colour = names.get(value), colours.get(value)
    for k in np.nonzero(in_core)[0]:
        left, top, w, h = (int(v) for v in stats[k, :4])
        complete = not ((cut[0] and top == 0) or (cut[1] and left == 0) or (cut[2] and top + h == wh)
                        or (cut[3] and left + w == ww))
        anchored = cy <= top < cy + th and cx <= left < cx + tw
        inside = anchored and top + h <= cy + th and left + w <= cx + tw
        if complete and (inside or (h < MARGIN and w < MARGIN)):
            if anchored:
                yield _feature(ids[top:top + h, left:left + w] == k, wy + top, wx + left, value, name, colour,
                               piece=False)
        else:
            yield _feature(ids[cy:cy + th, cx:cx + tw] == k, wy + cy, wx + cx, value, name, colour, piece=True)


def _feature(crop: np.ndarray, y0: int, x0: int, value: int, name, colour, piece: bool) -> dict:
    parts = []
    for shape in object_shapes(crop.astype(np.uint8)):
        parts.extend([[ring + (y0, x0) for ring in part] for part in shape.parts])
    made = feature(0, parts, name, colour)
    properties = made["properties"]
    del properties["object_id"]
    properties["class_id"] = value
    if piece:
        properties["piece"] = True
    return made


def label_name(slide_path: os.PathLike | str) -> str:
    """The label image's name in the OME-Zarr: the slide's file name without its suffixes, safe as a folder."""
    name = Path(slide_path).name
    for suffix in (".ome.tiff", ".ome.tif"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    else:
        name = Path(name).stem
    cleaned = "".join(c if c.isalnum() or c in "-_." else "_" for c in name).strip(".")
    return cleaned or "labels"
