"""One row of numbers per object, and per-class summaries: what a lab counts and measures.

Areas and perimeters are in pixels, and in micrometres when the image's pixel size is known; intensities
are the mean and maximum of each image channel over the object's pixels. scikit-image's
``regionprops_table`` does the measuring (about 0.7 s for 5,000 objects on a 4096 x 4096 slide:
benchmarks/bench_objects.py).
"""
from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from skimage.measure import regionprops_table

from segstudio.core.labels import ClassTable
from segstudio.core.objects.instances import object_classes
from segstudio.core.storage import atomic_write_text

__all__ = ["Measurements", "measure_objects", "remeasure", "summarise", "write_csv", "table_csv"]


@dataclass
class Measurements:
    """Rows of one image's objects; ``columns`` names every key of a row, in the order a table shows them."""

    columns: list[str]
    rows: list[dict]
    image: str = ""
    shape: tuple[int, int] = (0, 0)
    pixel_size_um: float | None = None
    class_names: dict[int, str] = field(default_factory=dict)


def _channel_names(pixels: np.ndarray, names: Sequence[str] | None) -> list[str]:
    count = 1 if pixels.ndim == 2 else pixels.shape[2]
    names = list(names or [])
    return [names[i] if i < len(names) and names[i] else f"channel {i + 1}" for i in range(count)]


def measure_objects(ids: np.ndarray, mask: np.ndarray, classes: ClassTable, *, pixels: np.ndarray | None = None,
                    channel_names: Sequence[str] | None = None, pixel_size_um: float | None = None,
                    hand: np.ndarray | None = None, model_version: str | None = None,
                    image: str = "") -> Measurements:
    """Measure every object of the instance map ``ids`` (0: background)."""
    if pixel_size_um is not None and not (np.isfinite(pixel_size_um) and pixel_size_um > 0):
        raise ValueError(f"pixel size {pixel_size_um} um is not a positive number")
    properties = ["label", "area", "perimeter", "centroid", "bbox"]
    intensity = None
    names: list[str] = []
    if pixels is not None:
        if pixels.shape[:2] != ids.shape:
            raise ValueError(f"image {pixels.shape[:2]} and instance map {ids.shape} differ in size")
        intensity = pixels
        names = _channel_names(pixels, channel_names)
        properties += ["intensity_mean", "intensity_max"]
    table = regionprops_table(np.asarray(ids), intensity_image=intensity, properties=properties)
    class_of = object_classes(ids, mask)
    corrected = None
    if hand is not None:
        corrected = np.bincount(ids.ravel(), weights=hand.ravel(), minlength=class_of.size) > 0
    known = {c.id: c.name for c in classes}
    columns = ["id", "class", "area_px", "perimeter_px", "centroid_x", "centroid_y"]
    if pixel_size_um:
        columns[3:3] = ["area_um2"]
        columns[5:5] = ["perimeter_um"]
    for name in names:
        columns += [f"mean {name}", f"max {name}"]
    columns += ["corrected", "model"]
    rows = []
    for i, label in enumerate(table["label"]):
        label = int(label)
        row = {"id": label, "class": known.get(int(class_of[label]), str(class_of[label])),
               "area_px": int(table["area"][i]), "perimeter_px": round(float(table["perimeter"][i]), 2),
               "centroid_x": round(float(table["centroid-1"][i]), 2),
               "centroid_y": round(float(table["centroid-0"][i]), 2)}
        if pixel_size_um:
            row["area_um2"] = round(row["area_px"] * pixel_size_um**2, 3)
            row["perimeter_um"] = round(row["perimeter_px"] * pixel_size_um, 3)
        for c, name in enumerate(names):
            suffix = "" if len(names) == 1 and intensity.ndim == 2 else f"-{c}"
            row[f"mean {name}"] = round(float(table[f"intensity_mean{suffix}"][i]), 3)
            row[f"max {name}"] = float(table[f"intensity_max{suffix}"][i])
        row["corrected"] = bool(corrected[label]) if corrected is not None else False
        row["model"] = model_version or ""
        # Where the object lies (y0, x0, y1, x1): not a column, but what remeasure() and the view use.
        row["_box"] = tuple(int(table[f"bbox-{k}"][i]) for k in range(4))
        rows.append(row)
    return Measurements(columns, rows, image, tuple(ids.shape), pixel_size_um or None, known)


def remeasure(table: Measurements, ids: np.ndarray, mask: np.ndarray, classes: ClassTable, box, **options) -> None:
    """Bring ``table`` up to date after an edit inside ``box`` (y0, x0, y1, x1): only the objects that had or
    have pixels there are measured again, on their own bounding box, so a brush stroke on a slide of
    thousands of objects costs a few objects' work. ``options`` are those of :func:`measure_objects`."""
    y0, x0, y1, x1 = box
    before = [row for row in table.rows if _row_in_box(row, box)]
    touched = {row["id"] for row in before} | {int(i) for i in np.unique(ids[y0:y1, x0:x1]) if i != 0}
    rows = [row for row in table.rows if row["id"] not in touched]
    # Where the touched objects can be: their boxes before the edit, grown at most into the edited box (an
    # object new to the table lies inside it), so the search never scans the whole slide.
    known = [row["_box"] for row in table.rows if row["id"] in touched]
    wy0 = min([y0] + [b[0] for b in known])
    wx0 = min([x0] + [b[1] for b in known])
    wy1 = max([y1] + [b[2] for b in known])
    wx1 = max([x1] + [b[3] for b in known])
    if touched:
        window = slice(wy0, wy1), slice(wx0, wx1)
        hit = np.isin(ids[window], list(touched))
        rr, cc = np.flatnonzero(hit.any(axis=1)), np.flatnonzero(hit.any(axis=0))
        if rr.size:
            crop = (slice(wy0 + int(rr[0]), wy0 + int(rr[-1]) + 1), slice(wx0 + int(cc[0]), wx0 + int(cc[-1]) + 1))
            inner = slice(int(rr[0]), int(rr[-1]) + 1), slice(int(cc[0]), int(cc[-1]) + 1)
            local = np.where(hit[inner], ids[crop], 0)
            cropped = {k: (v[crop] if isinstance(v, np.ndarray) else v) for k, v in options.items()}
            fresh = measure_objects(local, mask[crop], classes, **cropped)
            for row in fresh.rows:
                row["centroid_x"] = round(row["centroid_x"] + crop[1].start, 2)
                row["centroid_y"] = round(row["centroid_y"] + crop[0].start, 2)
                row["_box"] = (row["_box"][0] + crop[0].start, row["_box"][1] + crop[1].start,
                               row["_box"][2] + crop[0].start, row["_box"][3] + crop[1].start)
            rows += fresh.rows
            table.columns = fresh.columns
    rows.sort(key=lambda row: row["id"])
    table.rows = rows


def _row_in_box(row: dict, box) -> bool:
    y0, x0, y1, x1 = box
    r0, c0, r1, c1 = row["_box"]
    return r0 < y1 and y0 < r1 and c0 < x1 and x0 < c1


def summarise(measurements: Measurements) -> list[dict]:
    """Per class: object count, total and mean area, and density per mm^2 when the pixel size is known."""
    height, width = measurements.shape
    area_mm2 = None
    if measurements.pixel_size_um:
        area_mm2 = height * width * measurements.pixel_size_um**2 / 1e6
    by_class: dict[str, list[dict]] = {}
    for row in measurements.rows:
        by_class.setdefault(row["class"], []).append(row)
    summary = []
    for name, rows in sorted(by_class.items()):
        areas = [r["area_px"] for r in rows]
        entry = {"image": measurements.image, "class": name, "count": len(rows),
                 "total_area_px": int(sum(areas)), "mean_area_px": round(float(np.mean(areas)), 2)}
        entry["density_per_mm2"] = round(len(rows) / area_mm2, 3) if area_mm2 else None
        summary.append(entry)
    return summary


def table_csv(tables: Sequence[Measurements]) -> str:
    """One CSV for the objects of several images: an ``image`` column first, then the union of columns."""
    columns = ["image"]
    for table in tables:
        columns += [c for c in table.columns if c not in columns]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, restval="", extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for table in tables:
        for row in table.rows:
            writer.writerow({"image": table.image, **row})
    return out.getvalue()


def write_csv(path: os.PathLike | str, tables: Sequence[Measurements]) -> None:
    """Write the objects of ``tables`` to ``path`` in one go (atomically: never half a table)."""
    atomic_write_text(path, table_csv(tables))
