"""ImageJ/Fiji ROI sets (.zip, via roifile): one ROI per object, named ``<id>-<class>``.

Fiji opens the zip in the ROI Manager (drag it onto Fiji, or ROI Manager > More > Open). Coordinates are
sub-pixel (ImageJ's pixel (0, 0) covers 0..1, as in QuPath). An object in one piece without holes is a
polygon ROI; one with holes or in several pieces a composite (shape) ROI, whose rings ImageJ fills by the
even-odd rule, so holes stay holes.
"""
from __future__ import annotations

import os
import zipfile

import numpy as np
from roifile import ROI_TYPE, ImagejRoi

from segstudio.core.objects.formats.common import ObjectFileError, ObjectLayer, compact_ids
from segstudio.core.objects.polygons import Shape, from_xy, object_shapes, paint_shapes, to_xy
from segstudio.core.storage import atomic_open

_MOVE_TO, _LINE_TO, _CLOSE = 0, 1, 4  # java.awt.geom.PathIterator segment types, as ImageJ stores them


def _roi_name(object_id: int, name: str | None) -> str:
    return f"{object_id:05d}" if name is None else f"{object_id:05d}-{name}"


def _composite(shape: Shape) -> ImagejRoi:
    path: list[float] = []
    for ring in shape.rings():
        xy = to_xy(ring)
        path += [_MOVE_TO, *xy[0]]
        for x, y in xy[1:]:
            path += [_LINE_TO, x, y]
        path.append(_CLOSE)
    roi = ImagejRoi()
    roi.roitype = ROI_TYPE.RECT
    roi.multi_coordinates = np.asarray(path, np.float32)
    roi.shape_roi_size = len(path)
    every = np.concatenate([to_xy(r) for r in shape.rings()])
    roi.left, roi.top = (int(v) for v in np.floor(every.min(axis=0)))
    roi.right, roi.bottom = (int(v) for v in np.ceil(every.max(axis=0)))
    return roi


def roi_for(shape: Shape, name: str | None) -> ImagejRoi:
    if len(shape.parts) == 1 and len(shape.parts[0]) == 1:
        roi = ImagejRoi.frompoints(to_xy(shape.parts[0][0]).astype(np.float64))
        roi.roitype = ROI_TYPE.POLYGON
    else:
        roi = _composite(shape)
    roi.name = _roi_name(shape.object_id, name)
    return roi


def write(path: os.PathLike | str, layer: ObjectLayer) -> None:
    with atomic_open(path, "wb") as handle, zipfile.ZipFile(handle, "w", zipfile.ZIP_DEFLATED) as archive:
        for shape in object_shapes(layer.ids):
            roi = roi_for(shape, layer.names.get(shape.object_id))
            archive.writestr(f"{roi.name}.roi", roi.tobytes())


def _rings(roi: ImagejRoi) -> list[np.ndarray]:
    if roi.composite:
        return [from_xy(ring) for ring in roi.coordinates(multi=True) if len(ring) >= 3]
    if roi.roitype in (ROI_TYPE.POLYGON, ROI_TYPE.FREEHAND, ROI_TYPE.TRACED):
        coordinates = roi.coordinates()
        return [from_xy(coordinates)] if len(coordinates) >= 3 else []
    if roi.roitype == ROI_TYPE.RECT:
        x0, y0, x1, y1 = roi.left, roi.top, roi.right, roi.bottom
        return [from_xy([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])]
    return []


def _split_name(name: str) -> tuple[int | None, str | None]:
    head, _, tail = name.partition("-")
    return (int(head) if head.isdigit() else None), (tail or None)


def read(path: os.PathLike | str, shape: tuple[int, int]) -> ObjectLayer:
    """The objects of a ROI zip (or one .roi file) on an image of ``shape``; ROIs without an area (points,
    lines) are skipped and counted in ``layer.skipped``."""
    try:
        if str(path).lower().endswith(".roi"):
            rois = [ImagejRoi.fromfile(path)]
        else:
            with zipfile.ZipFile(path) as archive:
                rois = [ImagejRoi.frombytes(archive.read(n)) for n in archive.namelist() if n.endswith(".roi")]
    except (OSError, zipfile.BadZipFile, ValueError, IndexError) as exc:
        raise ObjectFileError(path, f"not readable as an ImageJ ROI set ({exc})") from exc
    shapes, names, skipped = [], {}, 0
    for roi in rois:
        rings = _rings(roi)
        if not rings:
            skipped += 1
            continue
        object_id = len(shapes) + 1
        shapes.append((object_id, rings))
        names[object_id] = _split_name(roi.name or "")[1]
    layer = ObjectLayer(compact_ids(paint_shapes(shape, shapes)), names)
    layer.skipped = skipped
    return layer
