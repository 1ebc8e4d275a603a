"""A slide's labels written for other tools, and the review grid a slide prediction fills, on a generated
slide of SIZE x SIZE labels (nuclei scattered over tissue blobs, saved in the label store's chunks).

Figures, each against a baseline in the same run:

* OME-Zarr export (every level, chunk by chunk) against copying the label store's saved chunks as they are
  (the least any export must read and write): time ratio; and its peak traced memory against the labels
  as one array (what a whole-slide export would hold): memory ratio;
* GeoJSON export (objects traced tile by tile) against OpenCV's findContours over the same tiles without
  the margin or the per-object outlines: time ratio; peak memory against the labels as one array;
* the review grid's per-slab sums against computing the slab's uncertainty (entropy of three classes'
  probabilities), which every predicted slab pays anyway: time ratio.

    python benchmarks/bench_slide_export.py [--size 16384] [--nuclei 20000]

Targets (exit status 1 when missed): both exports' peak memory under 64 MiB whatever the slide's size
(flat: a window of tiles, never the slide); the review grid under half the cost of the uncertainty it sums.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from segstudio.core.label_store import LabelStore  # noqa: E402
from segstudio.core.objects.formats import slide_labels  # noqa: E402
from segstudio.core.review import SLIDE_REGION, UncertaintyGrid  # noqa: E402

NAMES, COLOURS = {1: "nucleus", 2: "tissue"}, {1: (255, 0, 0), 2: (0, 160, 0)}


def make_labels(folder: Path, size: int, nuclei: int) -> LabelStore:
    store = LabelStore(size, size, folder, pyramid=False)
    rng = np.random.default_rng(0)
    band = 2048
    for y in range(0, size, band):  # painted a band at a time, as a prediction writes rows
        rows = np.zeros((min(band, size - y), size), np.uint8)
        for cy in range(y + 700, y + band, 1600):
            for cx in range(700, size, 3000):
                cv2.ellipse(rows, (cx, cy - y), (600, 400), 0, 0, 360, 2, -1)
        for _ in range(nuclei * rows.shape[0] // size):
            cv2.circle(rows, (int(rng.integers(0, size)), int(rng.integers(0, rows.shape[0]))), 8, 1, -1)
        store.put(y, 0, rows)
        store.save()
        store.forget_saved()
    return store


def measured(fn, memory: bool = True):
    """(result, seconds, peak traced bytes): timed in one run, memory traced in a second (tracing slows
    Python code several times over, so the two are never measured together)."""
    start = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - start
    peak = 0
    if memory:
        tracemalloc.start()
        fn()
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return result, seconds, peak


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=16384)
    parser.add_argument("--nuclei", type=int, default=20000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-export-"))
    try:
        return run(work, args.size, args.nuclei)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(work: Path, size: int, nuclei: int) -> int:
    make_labels(work / "labels.zarr", size, nuclei)
    whole = size * size  # bytes of the labels as one uint8 array
    fresh = lambda: LabelStore(size, size, work / "labels.zarr", pyramid=False)  # noqa: E731
    print(f"labels {size} x {size} ({whole / 2**20:.0f} MiB as one array), about {nuclei} nuclei")

    _, copy_s, _ = measured(lambda: shutil.copytree(work / "labels.zarr", work / "copy.zarr"), memory=False)
    levels, zarr_s, zarr_peak = measured(lambda: slide_labels.write_omezarr(
        work / "out.ome.zarr", fresh(), NAMES, COLOURS, pixel_size_um=0.25))
    print(f"OME-Zarr, {levels} levels: {zarr_s:.2f} s (chunk copy {copy_s:.2f} s, x{zarr_s / copy_s:.1f}); "
          f"peak {zarr_peak / 2**20:.0f} MiB = {zarr_peak / whole:.3f} of the labels as one array")

    def contours_only() -> int:
        labels, found = fresh(), 0
        for y in range(0, size, slide_labels.TILE):
            for x in range(0, size, slide_labels.TILE):
                tile = labels.read(y, x, min(slide_labels.TILE, size - y), min(slide_labels.TILE, size - x))
                for value in (1, 2):
                    found += len(cv2.findContours((tile == value).view(np.uint8), cv2.RETR_CCOMP,
                                                  cv2.CHAIN_APPROX_SIMPLE)[0])
            labels.forget_saved()
        return found

    _, contour_s, _ = measured(contours_only, memory=False)
    count, json_s, json_peak = measured(lambda: slide_labels.write_geojson(work / "out.geojson", fresh(), NAMES,
                                                                           COLOURS))
    print(f"GeoJSON, {count} features: {json_s:.2f} s (tile contours alone {contour_s:.2f} s, "
          f"x{json_s / contour_s:.1f}); peak {json_peak / 2**20:.0f} MiB = {json_peak / whole:.3f} of the labels")

    rng = np.random.default_rng(1)
    probs = rng.dirichlet((1.0, 1.0, 1.0), size=(512, 8192)).astype(np.float32).transpose(2, 0, 1).copy()
    slab = rng.random((512, 8192)).astype(np.float32)
    slab[:, :1000] = -1
    grid = UncertaintyGrid(size, size, SLIDE_REGION)
    start = time.perf_counter()
    for _ in range(10):
        entropy = -(probs * np.log(np.maximum(probs, 1e-12))).sum(0)  # what summarising a slab computes
        np.where(entropy >= 0, entropy, -1.0)
    entropy_s = (time.perf_counter() - start) / 10
    start = time.perf_counter()
    for i in range(10):
        grid.add(i * 512 % size, 0, slab)
    grid_s = (time.perf_counter() - start) / 10
    print(f"review grid: {grid_s * 1000:.1f} ms per 512 x 8192 slab (the slab's uncertainty itself "
          f"{entropy_s * 1000:.1f} ms, x{grid_s / entropy_s:.2f})")
    ok = max(zarr_peak, json_peak) < 64 * 2**20 and grid_s < entropy_s / 2
    print("targets met" if ok else "TARGET MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
