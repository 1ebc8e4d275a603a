"""Brush latency and flood-fill time on large masks, through the functions the canvas calls.

Per mouse-move segment the canvas calls ``paint_segment`` and keeps the segment's Diff; per release,
``merge_diffs`` makes the stroke one undo step. This drives random strokes (radius ~10 px, segments of 5-20 px in random
directions) on a 1024x1024 and an 8192x8192 mask, alternating between them so both see the same machine
load, and prints the 95th-percentile time per segment, their ratio, and the time to flood-fill the
background of a 10000x10000 mask (median of several runs: one run on a busy machine says more about
the machine than the code). Exits non-zero when a target is missed.

    python benchmarks/bench_paint.py [--strokes 300] [--fill-size 10000]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from collections import deque
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from segstudio.core.edits import flood_fill, paint_segment  # noqa: E402
from segstudio.core.history import merge_diffs  # noqa: E402

SEGMENT_P95_TARGET_S = 0.016
SIZE_RATIO_TARGET = 1.5
FILL_TARGET_S = 1.0


def labelled_mask(rng, size, n_objects):
    """A mask that looks like a prediction: background with round cells, pages already touched."""
    mask = np.zeros((size, size), np.uint8)
    for _ in range(n_objects):
        centre = (int(rng.integers(size)), int(rng.integers(size)))
        cv2.circle(mask, centre, int(rng.integers(5, 40)), int(rng.integers(2, 4)), -1)
    hand = np.empty((size, size), bool)
    hand.fill(False)
    return mask, hand


class StrokeDriver:
    def __init__(self, rng, size, radius):
        self.rng = rng
        self.size = size
        self.radius = radius
        self.mask, self.hand = labelled_mask(rng, size, n_objects=size // 8)
        # What the document's undo stack keeps: one merged Diff per stroke, at most its UNDO_LIMIT of 200.
        self.steps = deque(maxlen=200)
        self.segment_times: list[float] = []
        self.end_times: list[float] = []

    def stroke(self, n_segments, record_times=True):
        rng, size = self.rng, self.size
        value = int(rng.integers(0, 4))  # 0 is the eraser
        point = rng.uniform(0, size - 1, 2)
        segments = []
        for _ in range(n_segments):
            angle = rng.uniform(0, 2 * np.pi)
            length = rng.uniform(5, 20)
            nxt = np.clip(point + length * np.array([np.sin(angle), np.cos(angle)]), 0, size - 1)
            t0 = time.perf_counter()
            diff = paint_segment(self.mask, point, nxt, self.radius, value, hand=self.hand)
            segments.append(diff)
            elapsed = time.perf_counter() - t0
            if record_times:
                self.segment_times.append(elapsed)
            point = nxt
        t0 = time.perf_counter()
        merged = merge_diffs(segments)
        if merged is not None:
            self.steps.append(merged)
        if record_times:
            self.end_times.append(time.perf_counter() - t0)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:8.3f} ms"


def bench_strokes(args, rng) -> bool:
    drivers = [StrokeDriver(rng, size, args.radius) for size in (1024, 8192)]
    for driver in drivers:
        for _ in range(10):
            driver.stroke(args.segments, record_times=False)
    for i in range(args.strokes):
        order = drivers if i % 2 == 0 else drivers[::-1]
        for driver in order:
            driver.stroke(args.segments)

    print(f"brush strokes: {args.strokes} strokes x {args.segments} segments per size, radius {args.radius} px")
    p95 = {}
    for driver in drivers:
        t = np.array(driver.segment_times)
        e = np.array(driver.end_times)
        p95[driver.size] = float(np.percentile(t, 95))
        print(f"  {driver.size:5d}x{driver.size:<5d} segment p50 {ms(np.median(t))}  p95 {ms(p95[driver.size])}"
              f"  p99 {ms(np.percentile(t, 99))}  max {ms(t.max())} | end_stroke p95 {ms(np.percentile(e, 95))}"
              f" | history {sum(d.nbytes for d in driver.steps) / 2**20:.2f} MiB for {len(driver.steps)} steps"
              f" (mask {driver.mask.nbytes / 2**20:.0f} MiB)")
    ratio = p95[8192] / p95[1024]
    ok_latency = p95[8192] <= SEGMENT_P95_TARGET_S
    ok_ratio = ratio <= SIZE_RATIO_TARGET
    print(f"  segment p95 at 8192x8192: {ms(p95[8192])} (target <= {ms(SEGMENT_P95_TARGET_S)}) "
          f"{verdict(ok_latency)}")
    print(f"  p95 ratio 8192/1024: {ratio:.3f} (target <= {SIZE_RATIO_TARGET}) {verdict(ok_ratio)}")
    return ok_latency and ok_ratio


def bench_fill(args, rng) -> bool:
    size = args.fill_size
    base, hand = labelled_mask(rng, size, n_objects=2000)
    mask = base.copy()
    seed = tuple(int(v) for v in np.argwhere(base == 0)[0])
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        diff = flood_fill(mask, seed[0], seed[1], 1, hand=hand)
        times.append(time.perf_counter() - t0)
        filled = int(hand.sum())
        # Undo the fill so the next repeat fills the same region again.
        diff.revert(mask, hand)
        del diff
    assert np.array_equal(mask, base) and not hand.any()

    small_seed = tuple(int(v) for v in np.argwhere(base == 2)[0])
    t0 = time.perf_counter()
    small = flood_fill(mask, small_seed[0], small_seed[1], 3, hand=hand)
    small_time = time.perf_counter() - t0

    typical = float(np.median(times))
    print(f"flood fill on {size}x{size} (uint8 mask + hand map), region {filled / size**2:.1%} of the image,"
          f" {args.repeats} runs: " + ", ".join(f"{t:.3f} s" for t in times))
    print(f"  median {typical:.3f} s (target <= {FILL_TARGET_S} s) {verdict(typical <= FILL_TARGET_S)};"
          f" worst {max(times):.3f} s")
    print(f"  one cell ({small.shape[0]}x{small.shape[1]} box) on the same mask: {ms(small_time)}")
    return typical <= FILL_TARGET_S


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strokes", type=int, default=300, help="strokes per mask size")
    parser.add_argument("--segments", type=int, default=20, help="mouse-move segments per stroke")
    parser.add_argument("--radius", type=float, default=10.0)
    parser.add_argument("--fill-size", type=int, default=10000)
    parser.add_argument("--repeats", type=int, default=5, help="flood fills to time (the median is judged)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if min(args.strokes, args.segments, args.repeats) < 1:
        parser.error("--strokes, --segments and --repeats must be at least 1")

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"numpy {np.__version__}, opencv {cv2.__version__}, {os.cpu_count()} CPUs, load average {load:.2f}")
    rng = np.random.default_rng(args.seed)
    ok = bench_strokes(args, rng)
    ok = bench_fill(args, rng) and ok
    print("ALL PASS" if ok else "SOME TARGETS MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
