"""Memory and time of open images in the real window: what one 8192 x 8192 8-bit grey slide costs.

A MainWindow is built offscreen (settings and data in a scratch folder), a small image is opened and
closed once so lazily loaded libraries are not charged to the first big image, then two 8192^2 8-bit
grey TIFFs are opened one after the other through File > Open's own path. After each, garbage is
collected, the window is painted, and the growth of the process's resident memory (VmRSS) is charged
to that image and printed as bytes per pixel byte. The OS hands out the all-background mask and the
hand-painted map as untouched zero pages, so the image is measured twice: just opened, and with every
mask and hand-map pixel written (as after Predict), which is the figure judged against the target of 4
(the pixels themselves, the mask, the hand-painted map and one byte to spare). Then PgUp/PgDn switch
between the two images (the action the keys trigger, followed by a paint) and the time of each switch
is printed against 0.2 s. Exits non-zero when a target is missed.

    python benchmarks/bench_open.py [--size 8192] [--switches 6]
"""
from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

BYTES_PER_PIXEL_BYTE_TARGET = 4.0
SWITCH_TARGET_S = 0.2


def rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def settled_rss(app, window) -> int:
    """Resident memory once Qt's queued work, a paint and Python's garbage collection are done."""
    for _ in range(3):
        app.processEvents()
        window.canvas.viewport().repaint()
        app.processEvents()
        gc.collect()
    return rss_bytes()


def write_slide(path: Path, size: int, seed: int) -> None:
    """An 8-bit grey slide: noise with bright round cells, so display stretching has something to do."""
    import cv2
    import tifffile

    rng = np.random.default_rng(seed)
    pixels = rng.integers(10, 40, (size, size), dtype=np.uint8)
    for _ in range(size // 8):
        centre = (int(rng.integers(size)), int(rng.integers(size)))
        cv2.circle(pixels, centre, int(rng.integers(5, 30)), int(rng.integers(120, 250)), -1)
    tifffile.imwrite(path, pixels)


def bench_fill_undo(app, window) -> bool:
    """Background fills on the shown slide, as the Fill tool commits them: undo time and what undo holds."""
    from segstudio.core.edits import flood_fill

    doc = window.current
    undo_times = []
    for step in range(6):
        doc.mask.fill(0)
        doc.hand.fill(False)
        doc.mask_replaced.emit()
        diff = flood_fill(doc.mask, 0, 0, 1 + step % 2, hand=doc.hand)
        doc.push_diff(diff, "Fill")
        app.processEvents()
        if step == 0:
            t0 = time.perf_counter()
            window.actions.undo.trigger()
            window.canvas.viewport().repaint()
            undo_times.append(time.perf_counter() - t0)
            window.actions.redo.trigger()
    stack = doc.undo_stack
    held = stack.held_bytes()
    within = held <= stack.budget_bytes
    print(f"  undo of a whole-slide fill (undo + paint): {undo_times[0]:.3f} s")
    print(f"  after 6 whole-slide fills undo holds {held / 2**20:.0f} MiB in {stack.count()} steps"
          f" (budget {stack.budget_bytes / 2**20:.0f} MiB, ratio {held / stack.budget_bytes:.2f})"
          f" {'PASS' if within else 'FAIL'}")
    return within


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=8192, help="edge of the square test slides in pixels")
    parser.add_argument("--switches", type=int, default=6, help="PgDn presses to time")
    args = parser.parse_args(argv)

    scratch = Path(tempfile.mkdtemp(prefix="bench_open_"))
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ["SEGSTUDIO_DATA_DIR"] = str(scratch / "data")
    os.environ["XDG_CONFIG_HOME"] = str(scratch / "config")
    slides = [scratch / f"slide_{i}.tif" for i in range(2)]
    for i, path in enumerate(slides):
        write_slide(path, args.size, seed=i)
    small = scratch / "small.tif"
    write_slide(small, 256, seed=9)

    from segstudio.gui.app import create_application
    from segstudio.gui.main_window import MainWindow

    app = create_application()
    window = MainWindow()
    window.resize(1280, 820)
    window.show()
    deadline = time.monotonic() + 300
    while not window.prediction.ready and time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.01)
    (warm,) = window.open_paths([small])
    window.close_document(warm)
    before = settled_rss(app, window)

    pixel_bytes = args.size * args.size  # one byte per pixel: 8-bit grey
    print(f"{args.size}x{args.size} 8-bit grey, {pixel_bytes / 2**20:.0f} MiB of pixels per image;"
          f" window before opening: {before / 2**20:.0f} MiB resident; {os.cpu_count()} CPUs")
    ok = True
    open_times = []
    for path in slides:
        t0 = time.perf_counter()
        (doc,) = window.open_paths([path])
        open_times.append(time.perf_counter() - t0)
        opened = settled_rss(app, window)
        doc.mask.fill(0)
        doc.hand.fill(False)
        doc.mask_replaced.emit()
        after = settled_rss(app, window)
        print(f"  open {path.name}: {open_times[-1]:.2f} s; just opened +{(opened - before) / 2**20:.0f} MiB ="
              f" {(opened - before) / pixel_bytes:.2f} bytes per pixel byte")
        per_pixel_byte = (after - before) / pixel_bytes
        ratio = per_pixel_byte / BYTES_PER_PIXEL_BYTE_TARGET
        ok &= ratio <= 1.0
        print(f"    with mask and hand map written: +{(after - before) / 2**20:.0f} MiB ="
              f" {per_pixel_byte:.2f} bytes per pixel byte (target <= {BYTES_PER_PIXEL_BYTE_TARGET:.0f},"
              f" ratio {ratio:.2f}) {'PASS' if ratio <= 1.0 else 'FAIL'}")
        before = after

    switches = []
    for _ in range(args.switches):
        t0 = time.perf_counter()
        window.actions.next_image.trigger()
        app.processEvents()
        window.canvas.viewport().repaint()
        switches.append(time.perf_counter() - t0)
    typical = statistics.median(switches)
    ok &= typical <= SWITCH_TARGET_S
    print(f"  switch between the two (PgDn + paint), {len(switches)} times: "
          + ", ".join(f"{t:.3f}" for t in switches)
          + f" s; median {typical:.3f} s (target <= {SWITCH_TARGET_S} s, ratio {typical / SWITCH_TARGET_S:.2f})"
          f" {'PASS' if typical <= SWITCH_TARGET_S else 'FAIL'}")
    print(f"  resident memory with both open: {rss_bytes() / 2**20:.0f} MiB")
    ok &= bench_fill_undo(app, window)
    print("ALL PASS" if ok else "SOME TARGETS MISSED")
    window.close()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
