"""The size of one pixel, in micrometres, as a TIFF says it: OME-XML first, then ImageJ's calibration,
then the TIFF resolution tags. None when the file does not say, or says something no microscope means
(72 dpi, the default of many programs, would be 353 um per pixel)."""
from __future__ import annotations

import re

import tifffile

_UNITS_UM = {"m": 1e6, "cm": 1e4, "mm": 1e3, "µm": 1.0, "um": 1.0, "micron": 1.0, "microns": 1.0,
             "\\u00b5m": 1.0, "nm": 1e-3, "pixel": None, "": None}
_OME_SIZE = re.compile(r'PhysicalSizeX="([0-9.eE+-]+)"')
_OME_UNIT = re.compile(r'PhysicalSizeXUnit="([^"]*)"')
# Beyond this a "pixel size" is a page layout's resolution, not a microscope's.
_LARGEST_UM = 100.0


def _plausible(value: float | None) -> float | None:
    if value is None or not (0 < value <= _LARGEST_UM):
        return None
    return float(value)


def _from_ome(xml: str | None) -> float | None:
    if not xml:
        return None
    head = xml[:200_000]  # the first image's Pixels element comes early; a huge XML is not read whole
    size = _OME_SIZE.search(head)
    if size is None:
        return None
    unit = _OME_UNIT.search(head)
    scale = _UNITS_UM.get(unit.group(1) if unit else "µm")
    try:
        return None if scale is None else float(size.group(1)) * scale
    except ValueError:
        return None


def _x_resolution(page) -> float | None:
    tag = page.tags.get("XResolution")
    if tag is None:
        return None
    value = tag.value
    numerator, denominator = value if isinstance(value, tuple) else (value, 1)
    return numerator / denominator if numerator and denominator else None


def _from_imagej(meta: dict | None, page) -> float | None:
    if not meta or "unit" not in meta:
        return None
    scale = _UNITS_UM.get(str(meta["unit"]).strip().lower())
    per_unit = _x_resolution(page)
    return None if scale is None or not per_unit else scale / per_unit


def _from_tags(page) -> float | None:
    unit = page.tags.get("ResolutionUnit")
    per_unit = _x_resolution(page)
    if unit is None or not per_unit:
        return None
    if unit.value == 3:  # centimetre
        return 1e4 / per_unit
    if unit.value == 2:  # inch
        return 25_400 / per_unit
    return None


def tiff_pixel_size_um(tif: tifffile.TiffFile, page) -> float | None:
    """Micrometres per pixel along x for ``page`` of ``tif``, or None."""
    for reading in (lambda: _from_ome(tif.ome_metadata if tif.is_ome else None),
                    lambda: _from_imagej(tif.imagej_metadata if tif.is_imagej else None, page),
                    lambda: _from_tags(page)):
        try:
            size = _plausible(reading())
        except (ValueError, TypeError, ZeroDivisionError, AttributeError):
            size = None
        if size is not None:
            return size
    return None
