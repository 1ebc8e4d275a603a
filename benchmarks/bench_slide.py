"""A 102,400 x 102,400 pyramidal slide in the slide window: open, pan, paint, autosave, memory.

Generates (once, into /tmp; nothing is committed) a tiled, compressed pyramidal OME-TIFF with tissue in
patches, opens it in the slide window offscreen and measures, through the real widgets:
  - open -> first paint of the view, and -> every visible tile in at the right level;
  - pan frame time (p95) at full resolution with tiles streaming in on the pool, against the same pan over
    an 8192 x 8192 image held in memory (an ordinary image on the same canvas), in the same process;
  - a zoom sweep's frame time (p95);
  - brush segment time (p95) at full resolution and at overview, through real mouse events, repaint included;
  - autosave of one stroke's chunks: the GUI thread's share (the target) and the time until on disk;
  - a large overview stroke's chunks on their way to disk: saved behind its background painting (as
    before) against the autosave cycle that keeps up with the painting (how long after the painting
    ends the last chunk is on disk: what a crash then loses);
  - the process's memory (RSS) after all of it;
  - Fill clicked at overview inside a ring of labels: until the view shows it, and until its
    full-resolution pixels are painted;
  - the slide opened again with those labels saved: first paint, and when their overview is complete.
Targets from the slide work: first paint <= 1 s, frame p95 <= 33 ms, segment p95 <= 16 ms, autosave <= 100 ms,
on disk <= 2 s after the painting ends, RSS < 1.5 GB. Exits non-zero when one is missed.

    QT_QPA_PLATFORM=offscreen python benchmarks/bench_slide.py [--size 102400] [--frames 120]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("SEGSTUDIO_DATA_DIR", tempfile.mkdtemp(prefix="bench-slide-"))

from PySide6.QtCore import QPoint, QPointF, Qt  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from segstudio.core.imageio import Slide  # noqa: E402
from segstudio.synth.slides import TissuePatch, write_pyramid_ome  # noqa: E402

TARGETS = {"first_paint_s": 1.0, "reopen_first_paint_s": 1.0, "frame_p95_s": 0.033, "segment_p95_s": 0.016,
           "fill_shown_s": 0.1,
           "autosave_s": 0.1, "on_disk_after_painting_s": 2.0, "rss_gb": 1.5}


def p95(values) -> float:
    return float(np.percentile(np.asarray(values), 95))


def make_slide(size: int) -> Path:
    path = Path(tempfile.gettempdir()) / f"segstudio-bench-slide-{size}.ome.tif"
    if not path.exists():
        start = time.perf_counter()
        rng = np.random.default_rng(7)
        patches = [TissuePatch(float(y), float(x), float(r), float(r * 1.3))
                   for y, x, r in zip(rng.uniform(0.2, 0.8, 6) * size, rng.uniform(0.2, 0.8, 6) * size,
                                      rng.uniform(0.015, 0.03, 6) * size)]
        partial = path.with_suffix(".partial")
        write_pyramid_ome(partial, size, size, levels=5, tile=512, mpp=0.25, compression="jpeg", patches=patches)
        partial.replace(path)
        print(f"generated {path} ({path.stat().st_size / 2**20:.0f} MB) in {time.perf_counter() - start:.0f} s")
    return path


def rss_gb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 2**20
    return float("nan")


def open_and_first_paint(path: Path):
    from segstudio.gui.slides.window import open_slide_window

    start = time.perf_counter()
    window = open_slide_window(Slide(path))
    window.resize(1280, 800)
    window.show()
    QApplication.processEvents()
    window.canvas.viewport().repaint()
    first = time.perf_counter() - start
    window.image_tiles.settle(20000)
    window.canvas.viewport().repaint()
    return window, first, time.perf_counter() - start


def pan_frames(canvas, frames: int, step: int = 24) -> list[float]:
    """Scroll by ``step`` screen pixels per frame (right, then down), painting each frame synchronously."""
    times = []
    hbar, vbar = canvas.horizontalScrollBar(), canvas.verticalScrollBar()
    for index in range(frames):
        start = time.perf_counter()
        bar = hbar if (index // 30) % 2 == 0 else vbar
        bar.setValue(bar.value() + step)
        canvas.viewport().repaint()
        QApplication.processEvents()  # tiles that arrived meanwhile are taken in, as in the live window
        times.append(time.perf_counter() - start)
    return times


def zoom_frames(canvas, frames: int) -> list[float]:
    times = []
    centre = QPointF(canvas.viewport().rect().center())
    for index in range(frames):
        start = time.perf_counter()
        canvas.zoom_about(centre, 1.1 if (index // 20) % 2 == 0 else 1 / 1.1)
        canvas.viewport().repaint()
        QApplication.processEvents()
        times.append(time.perf_counter() - start)
    return times


def brush_segments(window, segments: int, start: QPoint | None = None, seed: int = 0) -> list[float]:
    canvas, viewport = window.canvas, window.canvas.viewport()
    window.tools["brush"].trigger()
    times = []
    rng = np.random.default_rng(seed)
    point = QPoint(400, 400) if start is None else start
    QTest.mousePress(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, point)
    for _ in range(segments):
        point = QPoint(int(np.clip(point.x() + rng.integers(-15, 16), 100, 1100)),
                       int(np.clip(point.y() + rng.integers(-15, 16), 100, 700)))
        start = time.perf_counter()
        QTest.mouseMove(viewport, point)
        viewport.repaint()
        times.append(time.perf_counter() - start)
    QTest.mouseRelease(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, point)
    canvas.viewport().repaint()
    return times


def fill_at_overview(window, doc) -> dict:
    """A ring of labels 8,192 px across is put on the slide; Fill clicked inside it at overview: the click
    until the view shows it, and until every full-resolution pixel inside is painted (in the background)."""
    from PySide6.QtCore import QPointF

    side, wall = 8192, 256
    y0 = x0 = 20_480  # on glass, away from the strokes above
    ring = np.ones((side, side), np.uint8)
    ring[wall:-wall, wall:-wall] = 0
    doc.store.put(y0, x0, ring)
    doc.notify_region(y0, x0, side, side)
    doc.save_now()
    doc.saver.wait()
    window.canvas.fit_to_window()
    window.tools["fill"].trigger()
    window.canvas.viewport().repaint()
    viewport = window.canvas.viewport()
    point = window.canvas.mapFromScene(QPointF(x0 + side / 2, y0 + side / 2))
    start = time.perf_counter()
    QTest.mouseClick(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, point)
    viewport.repaint()
    shown = time.perf_counter() - start
    doc.wait_painted()
    painted = time.perf_counter() - start
    inside = doc.store.read(y0 + side // 2, x0 + wall, 1, side - 2 * wall)
    return {"shown_s": shown, "painted_s": painted, "ok": bool((inside == 1).all()),
            "pixels": (side - 2 * wall) ** 2}


def autosave(doc) -> tuple[float, float, int]:
    """The GUI thread's time to start a save, the time until it is on disk, and the chunks written."""
    start = time.perf_counter()
    doc.save_now()
    gui = time.perf_counter() - start
    doc.saver.wait()
    return gui, time.perf_counter() - start, doc.last_written


def keeping_up(window, doc) -> dict:
    """A second overview stroke left to the real autosave cycle: when its painting ends and when its last
    chunk is on disk, measured from the mouse release, and the saves on the way."""
    saves = []
    doc.saved.connect(lambda written, seconds: saves.append(written))
    brush_segments(window, 60, start=QPoint(850, 400), seed=1)
    released, painted = time.perf_counter(), None
    while True:
        QApplication.processEvents()
        time.sleep(0.005)
        now = time.perf_counter()
        if painted is None and not doc.jobs.busy:
            painted = now
        if painted is not None and not (doc.store.unsaved or doc.hand.unsaved or doc.saver.busy):
            return {"painted_s": painted - released, "on_disk_s": now - released, "after_painting_s": now - painted,
                    "saves": len(saves), "last_chunks": saves[-1] if saves else 0, "chunks": sum(saves)}


def reopen(path: Path) -> dict:
    """The slide opened again with the labels saved above: open -> first paint, and when the label pyramid
    (the overview's labels) is complete; against building that pyramid at open, as a store did before."""
    from segstudio.core.label_store import LabelStore
    from segstudio.gui.slides.document import labels_folder

    window, first, _all_in = open_and_first_paint(path)
    start = time.perf_counter() - first
    doc = window.doc
    doc.pyramid_jobs.wait(300)
    built = time.perf_counter() - start
    chunks = len(doc.store.chunk_keys())
    window.close()
    QApplication.processEvents()
    begin = time.perf_counter()
    slide = Slide(path)
    LabelStore(slide.height, slide.width, labels_folder(path), build_pyramid=True)
    at_open = time.perf_counter() - begin
    slide.close()
    return {"first_s": first, "built_s": built, "chunks": chunks, "at_open_s": at_open}


def in_memory_pan(frames: int) -> list[float]:
    """An ordinary 8192 x 8192 RGB image held whole, panned the same way at the same zoom."""
    from segstudio.core.imageio import DisplayPicture
    from segstudio.gui.canvas.view import ImageCanvas

    rng = np.random.default_rng(1)
    pixels = np.ascontiguousarray(np.broadcast_to(rng.integers(0, 255, (1, 8192, 3), np.uint8), (8192, 8192, 3)))
    canvas = ImageCanvas()
    canvas.resize(1280, 800)
    canvas.show()
    canvas.set_image(DisplayPicture(pixels))
    canvas.set_zoom(1.0)
    canvas.centerOn(QPointF(2000, 2000))
    QApplication.processEvents()
    times = pan_frames(canvas, frames)
    canvas.image_item.settle()  # the coarser level its fitted view asked for: made before the next figure
    canvas.close()
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=102_400)
    parser.add_argument("--frames", type=int, default=120)
    args = parser.parse_args()
    app = QApplication.instance() or QApplication([])
    path = make_slide(args.size)
    window, first, all_in = open_and_first_paint(path)
    canvas = window.canvas
    # Full resolution over the edge of a tissue patch, so tiles of tissue stream in as the view moves.
    window.set_magnification(40)
    slide_centre = QPointF(args.size * 0.5, args.size * 0.5)
    canvas.centerOn(slide_centre)
    slide_pan = pan_frames(canvas, args.frames)
    memory_pan = in_memory_pan(args.frames)
    window.canvas.fit_to_window()
    zooms = zoom_frames(canvas, 80)
    window.image_tiles.settle(10000)
    rss_viewing = rss_gb()  # what viewing costs, before any painting: flat in slide size
    window.set_magnification(40)
    full_res = brush_segments(window, 150)
    doc = window.doc
    autosave_full, total_full, chunks = autosave(doc)
    canvas.fit_to_window()
    canvas.viewport().repaint()
    overview = brush_segments(window, 60, start=QPoint(350, 400))
    start = time.perf_counter()
    doc.wait_painted()
    catch_up = time.perf_counter() - start
    autosave_overview, total_overview, chunks_overview = autosave(doc)  # saved behind the painting
    behind = time.perf_counter() - start
    window.image_tiles.settle(10000)
    rss_before_second = rss_gb()  # the same work as the figure before the second stroke was measured
    kept = keeping_up(window, doc)
    window.image_tiles.settle(10000)
    rss = rss_gb()
    filled = fill_at_overview(window, doc)
    figures = {
        "first_paint_s": first, "frame_p95_s": max(p95(slide_pan), p95(zooms)),
        "segment_p95_s": max(p95(full_res), p95(overview)), "autosave_s": max(autosave_full, autosave_overview),
        "on_disk_after_painting_s": kept["after_painting_s"], "rss_gb": rss, "fill_shown_s": filled["shown_s"],
    }
    print(f"machine load (1/5/15 min): {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"slide: {args.size:,} x {args.size:,} pixels, {len(window.doc.slide.levels)} levels, "
          f"{path.stat().st_size / 2**20:.0f} MB on disk")
    print(f"open -> first paint:                 {first * 1000:7.1f} ms   "
          f"(every visible tile in: {all_in * 1000:.0f} ms)")
    print(f"pan at 40x, frame p95 (streaming):   {p95(slide_pan) * 1000:7.1f} ms")
    print(f"same pan, 8192^2 in memory, p95:     {p95(memory_pan) * 1000:7.1f} ms   "
          f"(slide / in-memory: {p95(slide_pan) / max(p95(memory_pan), 1e-9):.2f}x)")
    print(f"zoom sweep, frame p95:               {p95(zooms) * 1000:7.1f} ms")
    print(f"brush segment p95, full resolution:  {p95(full_res) * 1000:7.1f} ms")
    print(f"brush segment p95, overview:         {p95(overview) * 1000:7.1f} ms   "
          f"(radius {12 / canvas.zoom():,.0f} full-resolution pixels)")
    print(f"overview stroke's full-resolution pixels painted {catch_up * 1000:.0f} ms after the release "
          f"(in the background)")
    print(f"autosave of a stroke, GUI thread (on disk after):  {chunks} chunk(s) {autosave_full * 1000:.1f} ms "
          f"({total_full * 1000:.0f} ms) at full resolution; {chunks_overview} chunk(s) "
          f"{autosave_overview * 1000:.1f} ms ({total_overview * 1000:.0f} ms) at overview")
    print(f"overview stroke on disk, saved behind its painting:  {behind * 1000:7.0f} ms after the release")
    print(f"overview stroke on disk, autosave keeping up:        {kept['on_disk_s'] * 1000:7.0f} ms after the release, "
          f"{kept['after_painting_s'] * 1000:.0f} ms after its painting ended ({kept['painted_s'] * 1000:.0f} ms); "
          f"{kept['saves']} save(s), {kept['chunks']} chunk(s), the last save {kept['last_chunks']}")
    print(f"memory (RSS) after open, pans, zooms: {rss_viewing:6.2f} GB   (before any painting; painting adds what "
          "it paints, at overview far more of the slide than at 40x)")
    print(f"memory (RSS):                        {rss:7.2f} GB   ({rss_before_second:.2f} GB before the second "
          f"overview stroke, whose undo step holds its chunks' old and new pixels)")
    print(f"fill at overview inside an 8,192 px ring:  shown {filled['shown_s'] * 1000:.1f} ms after the click; "
          f"its {filled['pixels'] / 1e6:.0f} million full-resolution pixels painted "
          f"{filled['painted_s'] * 1000:.0f} ms after it (in the background){'' if filled['ok'] else ': WRONG'}")
    window.close()
    app.processEvents()
    reopened = reopen(path)
    figures["reopen_first_paint_s"] = reopened["first_s"]
    print(f"reopen with {reopened['chunks']:,} saved chunks, first paint: {reopened['first_s'] * 1000:7.1f} ms   "
          f"(their labels in the overview {reopened['built_s']:.2f} s after opening, on a thread; building "
          f"that at open, as before, takes {reopened['at_open_s']:.2f} s in this process)")
    from PySide6.QtCore import QThreadPool

    QThreadPool.globalInstance().waitForDone()
    missed = [name for name, value in figures.items() if value > TARGETS[name]]
    for name in missed:
        print(f"MISSED {name}: {figures[name]:.3f} > {TARGETS[name]}")
    return 1 if missed else 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    # The figures are printed; skip the interpreter's final collection, where the slide's zarr/tifffile
    # handles and Qt's objects are torn down in an order that can crash at exit.
    os._exit(code)
