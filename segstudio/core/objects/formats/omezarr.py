"""OME-Zarr (OME-NGFF 0.4) with the objects as a label image: napari opens it with napari-ome-zarr, and
so do Fiji (MoBIE, N5 viewer) and QuPath's OME-Zarr readers.

The folder holds the image (axes c, y, x; the pixel size as the scale, in micrometres) and
``labels/objects``, the instance map, with each object's class under ``image-label.properties``. Written
with zarr (format 2, what NGFF 0.4 specifies, the version most readers accept); the NGFF metadata are a
few dictionaries written here, which spares the ome-zarr package's download stack (dask, fsspec, aiohttp,
requests) for this one writer. The folder is built beside its target and renamed into place, so a failed
export never leaves half a dataset under the target's name.
"""
from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import numpy as np

from segstudio.core.objects.formats.common import ObjectFileError, ObjectLayer, compact_ids

_NGFF = "0.4"
_CHUNK = 1024
# NGFF 0.4 stores chunks in nested folders (c/y/x), not as dotted names.
_SLASH = {"name": "v2", "separator": "/"}


def _zarr():
    try:
        import zarr
    except ImportError as exc:  # an outside package, optional on Python 3.10 (zarr 3 needs 3.11)
        raise ObjectFileError("OME-Zarr", "needs the zarr package (Python 3.11 or newer)") from exc
    return zarr


def _multiscales(name: str, axes: list[dict], scale: list[float], levels: int = 1, factor: int = 2) -> list[dict]:
    """NGFF 0.4 multiscales: level k at path "k", its spatial scale (the last two) ``factor**k`` times level 0's."""
    datasets = []
    for k in range(levels):
        level_scale = [*scale[:-2], *(value * factor ** k for value in scale[-2:])]
        datasets.append({"path": str(k), "coordinateTransformations": [{"type": "scale", "scale": level_scale}]})
    return [{"version": _NGFF, "name": name, "axes": axes, "datasets": datasets}]


def image_label(names: dict[int, str | None], colours: dict[int, tuple[int, int, int]]) -> dict:
    """The "image-label" attributes: each label value's colour and class."""
    present = sorted(names)
    label: dict = {"version": _NGFF, "source": {"image": "../../"}}
    if present:  # the schema wants at least one entry when the lists are there
        label["colors"] = [{"label-value": i, "rgba": [*colours.get(i, (255, 0, 0)), 255]} for i in present]
        label["properties"] = [{"label-value": i, "class": names[i]} for i in present]
    return label


def _space_axes(pixel_size_um: float | None) -> list[dict]:
    unit = {"unit": "micrometer"} if pixel_size_um else {}
    return [{"name": "y", "type": "space", **unit}, {"name": "x", "type": "space", **unit}]


def _write_tree(folder: Path, layer: ObjectLayer, colours: dict, pixels: np.ndarray | None,
                pixel_size_um: float | None, name: str) -> None:
    zarr = _zarr()
    size = float(pixel_size_um or 1.0)
    root = zarr.open_group(str(folder), mode="w", zarr_format=2)
    if pixels is not None:
        planes = pixels[None] if pixels.ndim == 2 else np.moveaxis(pixels, 2, 0)
        image = root.create_array("0", shape=planes.shape, dtype=planes.dtype,
                                  chunks=(1, _CHUNK, _CHUNK), chunk_key_encoding=_SLASH)
        image[...] = planes
        axes = [{"name": "c", "type": "channel"}, *_space_axes(pixel_size_um)]
        root.attrs["multiscales"] = _multiscales(name, axes, [1.0, size, size])
    labels = root.create_group("labels")
    labels.attrs["labels"] = ["objects"]
    group = labels.create_group("objects")
    ids = compact_ids(layer.ids)
    array = group.create_array("0", shape=ids.shape, dtype=ids.dtype, chunks=(_CHUNK, _CHUNK),
                               chunk_key_encoding=_SLASH)
    array[...] = ids
    group.attrs["multiscales"] = _multiscales("objects", _space_axes(pixel_size_um), [size, size])
    group.attrs["image-label"] = image_label(layer.names, {i: colours.get(n) for i, n in layer.names.items()
                                                          if colours.get(n) is not None})


def write(path: os.PathLike | str, layer: ObjectLayer, colours: dict, *, pixels: np.ndarray | None = None,
          pixel_size_um: float | None = None, name: str = "") -> None:
    build_in_place(path, lambda building: _write_tree(building, layer, colours, pixels, pixel_size_um,
                                                      name or Path(path).stem))


def build_in_place(path: os.PathLike | str, build) -> None:
    """Run ``build(folder)`` on a folder beside ``path`` and rename it into place once it is complete, so a
    failed or cancelled export never leaves half a folder under the target's name."""
    target = Path(path)
    building = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        build(building)
        if target.exists():
            old = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.old")
            os.replace(target, old)
            os.replace(building, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(building, target)
    except OSError as exc:
        raise ObjectFileError(target, f"cannot write ({exc.strerror or exc})") from exc
    finally:
        shutil.rmtree(building, ignore_errors=True)


def read(path: os.PathLike | str) -> ObjectLayer:
    zarr = _zarr()
    try:
        group = zarr.open_group(str(Path(path) / "labels" / "objects"), mode="r")
        ids = np.asarray(group["0"][...])
        properties = dict(group.attrs).get("image-label", {}).get("properties", [])
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise ObjectFileError(path, f"no object labels readable in this OME-Zarr folder ({exc})") from exc
    names = {int(p["label-value"]): p.get("class") for p in properties if "label-value" in p}
    return ObjectLayer(compact_ids(ids), names)
