"""Objects on a 4096 x 4096 slide of 5,000 nuclei: finding, measuring and outlining them, and the object view
refreshing after a brush stroke, through the functions the window calls.

Each step prints its median time (several runs: one run on a shared machine says more about the machine
than the code) and its ratio to a baseline run in the same process on the same data:

* finding objects (watershed) against plain connected components (no splitting);
* measuring (regionprops: area, perimeter, centroid, intensities) against areas alone (np.bincount);
* outlining every object (exact polygons, holes kept) against OpenCV's findContours on the whole mask;
* after a brush stroke: the instance map following the edit, the object view redrawing its rectangle and
  the table re-measuring the touched objects, against the class overlay's redraw of the same rectangle
  and against recolouring the whole object view (what a refresh that ignored the rectangle would cost).

    QT_QPA_PLATFORM=offscreen python benchmarks/bench_objects.py [--size 4096] [--objects 5000] [--runs 3]

Targets (exit status 1 when missed): a stroke's refresh under 50 ms (fluid painting); measuring and
outlining 5,000 objects each under 3 s (a table or an export the user waits for once).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from segstudio.core.edits import paint_segment  # noqa: E402
from segstudio.core.labels import ClassTable  # noqa: E402
from segstudio.core.objects.editing import follow_mask  # noqa: E402
from segstudio.core.objects.instances import connected_objects, split_touching  # noqa: E402
from segstudio.core.objects.measure import measure_objects, remeasure  # noqa: E402
from segstudio.core.objects.polygons import object_shapes  # noqa: E402

STROKE_TARGET_S = 0.050
MEASURE_TARGET_S = 3.0
OUTLINE_TARGET_S = 3.0


def slide(rng, size: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """A class mask of ``count`` round nuclei (a fifth of them touching a neighbour) and a 16-bit image."""
    mask = np.zeros((size, size), np.uint8)
    for _ in range(count):
        x, y, r = int(rng.integers(size)), int(rng.integers(size)), int(rng.integers(7, 13))
        cv2.circle(mask, (x, y), r, 1, -1)
    pixels = (mask.astype(np.uint16) * 2000 + rng.integers(0, 200, mask.shape, dtype=np.uint16))
    return mask, pixels


def timed(fn, runs: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def report(name: str, seconds: float, baseline_name: str, baseline: float) -> None:
    print(f"{name:<44} {seconds * 1000:9.1f} ms   {baseline_name:<36} {baseline * 1000:8.1f} ms   "
          f"x{seconds / max(baseline, 1e-9):6.1f}")


def stroke_refresh(mask, ids, classes, pixels, rng, runs: int):
    from PySide6.QtWidgets import QApplication

    from segstudio.gui.canvas.objects import ObjectOverlayItem, colour_index
    from segstudio.gui.canvas.overlay import MaskOverlayItem

    QApplication.instance() or QApplication([])
    objects, overlay, classes_overlay = ObjectOverlayItem(), None, MaskOverlayItem()
    objects.set_ids(ids)
    classes_overlay.set_mask(mask, classes.lut_rgba())
    table = measure_objects(ids, mask, classes, pixels=pixels)
    size = mask.shape[0]
    ours, theirs, whole = [], [], []
    for _ in range(runs * 10):
        y, x = int(rng.integers(50, size - 50)), int(rng.integers(50, size - 50))
        diff = paint_segment(mask, (y, x), (y + int(rng.integers(-30, 30)), x + int(rng.integers(-30, 30))), 8, 1)
        if diff is None:
            continue
        y0, x0, y1, x1 = diff.bbox
        start = time.perf_counter()
        follow_mask(ids, mask, y0, x0, y1, x1)
        objects.refresh(y0, x0, y1 - y0, x1 - x0)
        remeasure(table, ids, mask, classes, (y0, x0, y1, x1), pixels=pixels)
        ours.append(time.perf_counter() - start)
        start = time.perf_counter()
        classes_overlay.refresh(y0, x0, y1 - y0, x1 - x0)
        theirs.append(time.perf_counter() - start)
        start = time.perf_counter()
        colour_index(ids)
        whole.append(time.perf_counter() - start)
    del overlay
    return statistics.median(ours), max(ours), statistics.median(theirs), statistics.median(whole)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--objects", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    mask, pixels = slide(rng, args.size, args.objects)
    classes = ClassTable.default()

    find, ids = timed(lambda: split_touching(mask), args.runs)
    plain, patches = timed(lambda: connected_objects(mask), args.runs)
    count = int(ids.max())
    print(f"{args.size} x {args.size} mask, {count} objects after splitting ({int(patches.max())} connected "
          f"patches); median of {args.runs} runs\n")
    report("find objects (watershed)", find, "connected components", plain)
    measure, _ = timed(lambda: measure_objects(ids, mask, classes, pixels=pixels), args.runs)
    areas, _ = timed(lambda: np.bincount(ids.ravel()), args.runs)
    report(f"measure {count} objects", measure, "areas only (bincount)", areas)
    outline, _ = timed(lambda: object_shapes(ids), args.runs)
    contours, _ = timed(lambda: cv2.findContours(mask, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE), args.runs)
    report(f"outline {count} objects (exact, holes kept)", outline, "cv2.findContours on the mask", contours)
    ids32 = ids.astype(np.uint32)
    median, worst, class_view, whole = stroke_refresh(mask.copy(), ids32, classes, pixels, rng, args.runs)
    report("brush stroke: objects follow + redraw + table", median, "class overlay redraw of the box", class_view)
    report("brush stroke (same)", median, "recolour the whole object view", whole)
    print(f"\nslowest stroke refresh: {worst * 1000:.1f} ms")
    missed = [name for name, value, target in (("stroke refresh", median, STROKE_TARGET_S),
                                               ("measure", measure, MEASURE_TARGET_S),
                                               ("outline", outline, OUTLINE_TARGET_S)) if value > target]
    print("targets met" if not missed else f"targets missed: {', '.join(missed)}")
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
