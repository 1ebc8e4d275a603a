"""The inspector on a 512 x 512 region: how soon the diagram shows maps, and how long until every map is in.

    python benchmarks/bench_inspect.py [--model resources/models/nuclei-unet.safetensors] [--side 512]
                                       [--repeats 3] [--threads 0]

What the window does when "Compute for view" is pressed on a view larger than the preview side: a quick pass
on the view block-averaged to at most PREVIEW_SIDE px (the diagram's thumbnails come from it), then the full
pass at full resolution (the maps, the grid, the skip pairs). Printed, median of --repeats, same process:

- forward: the plain network on the 512 x 512 input (inference mode), the baseline;
- first thumbnails: the preview pass plus every node's thumbnail picture; target <= 1 s on this CPU, at any
  load. Printed twice: as before (the preview on torch's threads, which on a busy machine wait for a core
  each) and as now (a pass under engine.devices.ONE_THREAD_BELOW_PIXELS runs on one thread);
- all maps: the preview, then the full pass with every tap captured and its statistics (what the window
  waits for in total), and its ratio to the plain forward pass;
- why: explaining one clicked pixel (one backward pass and one forward pass per skip on a 256 px window).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from segstudio.core.imageio import read_image  # noqa: E402
from segstudio.engine import devices  # noqa: E402
from segstudio.engine.inspect import TapInspector  # noqa: E402
from segstudio.engine.inspect_why import explain_pixel  # noqa: E402
from segstudio.gui.inspector.controller import PREVIEW_SIDE  # noqa: E402
from segstudio.gui.inspector.diagram import thumbnail  # noqa: E402
from segstudio.models.checkpoint import load_checkpoint  # noqa: E402


def image_of_at_least(side: int) -> np.ndarray:
    """The bundled crowded sample, tiled up to side x side when it is smaller."""
    pixels = read_image(ROOT / "resources" / "samples" / "nuclei_crowded_16bit.tif").pixels
    reps = (max(1, -(-side // pixels.shape[0])), max(1, -(-side // pixels.shape[1]))) + (1,) * (pixels.ndim - 2)
    return np.tile(pixels, reps)


def timed(fn, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ROOT / "resources" / "models" / "nuclei-unet.safetensors"))
    parser.add_argument("--side", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    model, meta = load_checkpoint(args.model)
    inspector = TapInspector(model, meta, device="cpu")
    pixels = image_of_at_least(args.side)
    view = (0, 0, args.side, args.side)
    full_region = inspector.plan(pixels.shape[:2], view, max_side=args.side)
    preview_region = inspector.plan(pixels.shape[:2], view, max_side=PREVIEW_SIDE, mode="downsample")
    x = torch.zeros(1, inspector.in_channels, *full_region.input_shape)
    with torch.inference_mode():
        model(x)  # warm-up: first-call allocations are not what a user waits for on the second look

    def forward():
        with torch.inference_mode():
            return model(x)

    def first_thumbnails():
        preview = inspector.inspect(pixels, preview_region)
        return [thumbnail(preview, name) for name in preview.taps]

    def all_maps():
        first_thumbnails()
        return inspector.inspect(pixels, full_region)

    def as_before(fn):
        def run():
            small, devices.ONE_THREAD_BELOW_PIXELS = devices.ONE_THREAD_BELOW_PIXELS, 0
            try:
                return fn()
            finally:
                devices.ONE_THREAD_BELOW_PIXELS = small
        return run

    centre = args.side // 2
    t_forward, _ = timed(forward, args.repeats)
    t_first_before, _ = timed(as_before(first_thumbnails), args.repeats)
    t_first, thumbs = timed(first_thumbnails, args.repeats)
    t_all, inspection = timed(all_maps, args.repeats)
    t_why, why = timed(lambda: explain_pixel(inspector, pixels, centre, centre), args.repeats)

    print(f"model {meta.id if hasattr(meta, 'id') else args.model} ({inspector.arch}), "
          f"{len(inspection.taps)} taps, region {full_region.input_shape[1]} x {full_region.input_shape[0]}, "
          f"preview {preview_region.input_shape[1]} x {preview_region.input_shape[0]} (step {preview_region.step}), "
          f"torch threads {torch.get_num_threads()}, median of {args.repeats}")
    print(f"plain forward pass           {t_forward:7.3f} s   1.00x")
    print(f"first thumbnails, before     {t_first_before:7.3f} s   {t_first_before / t_forward:.2f}x forward   "
          f"(preview on {torch.get_num_threads()} threads)")
    print(f"first thumbnails (preview)   {t_first:7.3f} s   {t_first / t_forward:.2f}x forward   "
          f"({len(thumbs)} thumbnails, {t_first / t_first_before:.2f}x before; "
          f"target <= 1 s: {'met' if t_first <= 1.0 else 'NOT met'})")
    print(f"all maps (preview + full)    {t_all:7.3f} s   {t_all / t_forward:.2f}x forward")
    print(f"why this pixel (256 window)  {t_why:7.3f} s   {t_why / t_forward:.2f}x forward   "
          f"({len(why.skips)} skips switched off)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
