"""Tiled prediction: overhead over the raw network, speed against MONAI, and peak host memory.

    python benchmarks/bench_predict.py [--size 4096] [--tile 512] [--overlap 0.25] [--batch 1]
                                       [--device auto] [--mem-size 8192] [--mem-model same|tiny]

(a) overhead: time of Predictor.predict on a size x size image divided by (tiles x time per tile of a
    raw batched forward of the same model, same precision, layout and host-memory handling) in this
    process. Target <= 1.10.
(b) MONAI: the same image through monai.inferers.sliding_window_inference with the same tile, overlap,
    batch and Gaussian blending (sigma 1/8 of the tile), including the same input preparation,
    labels/confidence/uncertainty outputs and the model's clean-up of the mask. Like with like: both run
    inside the same host-memory reuse (segstudio/engine/hostmem.py, which Predictor.predict uses), on the
    product's bundled model
    (nuclei-unet) at the product's CPU batch of 1. Target ours / MONAI <= 0.95, from doing less outside
    the network. MONAI without the reuse is printed for reference, with the time each spends outside the
    network. Skipped when MONAI is missing (pip install segstudio[bench]).
(c) memory: peak resident memory of a child process predicting a mem-size x mem-size uint16 image, minus
    that of a child that only imports torch and builds the model. Target well under 2 GiB.
(d) sizes (--sizes 8192,16384): wall time, megapixels/s and peak GPU memory of Predictor.predict at each
    image side, with mixed precision on and off. GPU memory must stay flat in image size. The model's
    throughput is set beside NVIDIA's published U-Net inference figure (A100, FP16: 283 images/s of
    572 x 572 px, DeepLearningExamples), scaled by work: that figure times the FLOPs of one 572^2 pass of
    the original U-Net gives the FLOP rate NVIDIA reached; divided by this model's FLOPs per megapixel it
    gives the megapixels/s the same rate would reach with this model. FLOPs are counted by torch.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from segstudio.core.postprocess import apply_postprocess  # noqa: E402
from segstudio.engine.devices import amp_dtype, device_label, pick_device, uses_channels_last  # noqa: E402
from segstudio.engine.hostmem import keep_host_memory  # noqa: E402
from segstudio.engine.hostmem import supported as hostmem_supported  # noqa: E402
from segstudio.engine.predict import Predictor, PredictSettings, plan_tiles, prepare_input  # noqa: E402

GIB = 1 << 30
NUM_CLASSES = 3
# Wall time by default. "--clock cpu" counts this process's CPU time instead: on a CPU shared with other
# jobs, wall time mostly measures the neighbours, while CPU time (with --threads 1) measures the work.
clock = time.perf_counter


# --- models ---------------------------------------------------------------------------------------------
def _double_conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
    )


class BenchUNet(nn.Module):
    """A small but real U-Net: three poolings, 16 base channels, batch norm, transposed-conv upsampling."""

    def __init__(self, in_channels: int = 1, num_classes: int = NUM_CLASSES, base: int = 16, depth: int = 3):
        super().__init__()
        widths = [base * 2**level for level in range(depth + 1)]
        self.down = nn.ModuleList()
        previous = in_channels
        for width in widths[:-1]:
            self.down.append(_double_conv(previous, width))
            previous = width
        self.bottom = _double_conv(previous, widths[-1])
        previous = widths[-1]
        self.up = nn.ModuleList()
        self.merge = nn.ModuleList()
        for width in reversed(widths[:-1]):
            self.up.append(nn.ConvTranspose2d(previous, width, 2, stride=2))
            self.merge.append(_double_conv(2 * width, width))
            previous = width
        self.head = nn.Conv2d(previous, num_classes, 1)

    def forward(self, x):
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        x = self.bottom(x)
        for up, merge, skip in zip(self.up, self.merge, reversed(skips)):
            x = merge(torch.cat([up(x), skip], dim=1))
        return self.head(x)


class TinyNet(nn.Sequential):
    """Two convolutions: for measuring the engine's own memory when a real network would be too slow."""

    def __init__(self, in_channels: int = 1, num_classes: int = NUM_CLASSES):
        super().__init__(nn.Conv2d(in_channels, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, num_classes, 1))


def build(kind: str) -> nn.Module:
    torch.manual_seed(0)
    if kind == "tiny":
        return TinyNet().eval()
    if kind == "bench-unet":
        return BenchUNet().eval()
    if kind == "nuclei-unet":  # the bundled model the product predicts with
        return product_model()[0]
    from segstudio.models.registry import build_model

    return build_model(kind, in_channels=1, num_classes=NUM_CLASSES).eval()


META = SimpleNamespace(in_channels=1, normalisation={"kind": "percentile", "low": 1.0, "high": 99.8}, classes=[])


def product_model():
    """(model, meta) of the bundled nuclei-unet, as the window loads it."""
    from segstudio.models.library import ModelLibrary

    model, meta = ModelLibrary().load("nuclei-unet", device="cpu")
    return model.eval(), meta


def make_image(size: int) -> np.ndarray:
    """uint16 texture with blobs: realistic enough that the network's work is not trivial."""
    rng = np.random.default_rng(0)
    image = np.empty((size, size, 1), np.uint16)
    yy = np.arange(size, dtype=np.float32)[:, None]
    for start in range(0, size, 1024):  # rows in slabs, so making the image costs no more than the image
        rows = yy[start : start + 1024]
        xx = np.arange(size, dtype=np.float32)[None, :]
        slab = 1000 + 600 * np.sin(rows / 23.0) * np.cos(xx / 31.0)
        slab += rng.normal(0, 80, slab.shape)
        image[start : start + 1024, :, 0] = np.clip(slab, 0, 65535)
    return image


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


# --- (a) overhead over the raw network ----------------------------------------------------------------
def time_raw_forward(model, device, tile: int, batch: int, amp: bool, repeats: int) -> float:
    """Seconds per tile of a bare batched forward (same precision and layout as the predictor uses)."""
    x = torch.rand(batch, _in_channels(model), tile, tile, device=device)
    if uses_channels_last(device):
        x = x.contiguous(memory_format=torch.channels_last)
    precision = amp_dtype(device) if amp else None
    times = []
    with torch.inference_mode():
        for i in range(repeats + 1):
            synchronize(device)
            start = clock()
            if precision is not None:
                with torch.autocast(device.type, dtype=precision):
                    model(x)
            else:
                model(x)
            synchronize(device)
            if i:  # the first call pays for allocation and algorithm choice
                times.append(clock() - start)
    return min(times) / batch


def _in_channels(model) -> int:
    from segstudio.engine.predict.model_input import infer_in_channels

    return infer_in_channels(model.model if isinstance(model, ForwardClock) else model)


class ForwardClock(nn.Module):
    """Wraps the model and adds up the time spent inside its forward (CPU only: no device sync needed).

    Comparing a run's total with its own forward time is immune to the machine getting busier or quieter
    between two separate measurements.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.seconds = 0.0

    def forward(self, x):
        start = clock()
        out = self.model(x)
        self.seconds += clock() - start
        return out


def time_ours(predictor: Predictor, image: np.ndarray, settings: PredictSettings):
    device = predictor.device
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    forward_clock = ForwardClock(predictor.model) if device.type == "cpu" else None
    model = predictor.model
    if forward_clock is not None:
        predictor.model = forward_clock
    try:
        synchronize(device)
        start = clock()
        result = predictor.predict(image, settings)
        seconds = clock() - start
    finally:
        predictor.model = model
    gpu_peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    forward_seconds = forward_clock.seconds if forward_clock is not None else None
    return SimpleNamespace(seconds=seconds, result=result, forward_seconds=forward_seconds, gpu_peak=gpu_peak)


# --- (b) MONAI ----------------------------------------------------------------------------------------
def monai_runner(predictor: Predictor, settings: PredictSettings):
    """A function image -> (labels, confidence, uncertainty) through MONAI, doing the same work as ours."""
    try:
        from monai.inferers import sliding_window_inference
    except ImportError:
        return None
    device, model = predictor.device, predictor.model
    precision = amp_dtype(device) if settings.amp else None

    def probabilities(tiles):
        if uses_channels_last(device):  # MONAI gets the same layout, so only the sliding window differs
            tiles = tiles.contiguous(memory_format=torch.channels_last)
        if precision is not None:
            with torch.autocast(device.type, dtype=precision):
                logits = model(tiles)
        else:
            logits = model(tiles)
        return torch.softmax(logits.float(), dim=1)

    def run(pixels):
        x = torch.from_numpy(prepare_input(pixels, predictor.in_channels, predictor.normalisation))[None].to(device)
        with torch.inference_mode():
            probs = sliding_window_inference(
                x, roi_size=(settings.tile, settings.tile), sw_batch_size=settings.batch, predictor=probabilities,
                overlap=settings.overlap, mode="gaussian", sigma_scale=settings.sigma_scale,
            )[0]
            confidence, labels = probs.max(dim=0)
            entropy = -(probs * torch.log(probs.clamp_min(1e-12))).sum(dim=0) / math.log(probs.shape[0])
            outputs = (labels.to(torch.uint8).cpu().numpy(), confidence.half().cpu().numpy(),
                       entropy.clamp(0, 1).half().cpu().numpy())
        synchronize(device)
        # The same clean-up of the mask that Predictor.predict applies for this model (holes, specks).
        apply_postprocess(outputs[0], getattr(predictor.meta, "postprocess", None))
        return outputs

    return run


def time_monai(predictor: Predictor, image: np.ndarray, settings: PredictSettings, keep_memory: bool):
    """MONAI's run over the image; keep_memory runs it inside segstudio's host-memory reuse as well."""
    device = predictor.device
    forward_clock = ForwardClock(predictor.model) if device.type == "cpu" else None
    model = predictor.model
    if forward_clock is not None:
        predictor.model = forward_clock
    try:
        run = monai_runner(predictor, settings)
        with keep_host_memory() if keep_memory else contextlib.nullcontext():
            start = clock()
            labels = run(image)[0]
            seconds = clock() - start
    finally:
        predictor.model = model
    forward_seconds = forward_clock.seconds if forward_clock is not None else None
    return SimpleNamespace(seconds=seconds, labels=labels, forward_seconds=forward_seconds)


def bench_speed(predictor: Predictor, image: np.ndarray, settings: PredictSettings, args, with_monai: bool):
    device = predictor.device
    plan = plan_tiles(image.shape[0], image.shape[1], settings.tile, settings.overlap, settings.align)
    # Allocator and cuDNN algorithm choice at the real tile size, for a full batch and a single tile.
    warm = image[: 2 * plan.tile_h, : 2 * plan.tile_w]
    predictor.predict(warm, settings)
    monai = monai_runner(predictor, settings) if with_monai else None
    if monai is not None:
        monai(warm)
    # Same host-memory handling as Predictor.predict, so (a) compares like with like.
    with keep_host_memory():
        raw = [time_raw_forward(predictor.model, device, plan.tile_h, settings.batch, settings.amp, args.repeats)]
    ours, theirs, theirs_kept = [], [], []
    for _ in range(args.rounds):  # alternate, so a busier spell of the machine hits both alike
        ours.append(time_ours(predictor, image, settings))
        if monai is not None:
            # The judged run gets the same host-memory handling as ours; the reference run goes without.
            theirs.append(time_monai(predictor, image, settings, keep_memory=hostmem_supported()))
            if args.monai_kept and hostmem_supported():
                theirs_kept.append(time_monai(predictor, image, settings, keep_memory=False))
    with keep_host_memory():
        raw.append(time_raw_forward(predictor.model, device, plan.tile_h, settings.batch, settings.amp,
                                    args.repeats))
    fastest = lambda runs: min(runs, key=lambda r: r.seconds) if runs else None  # noqa: E731
    return SimpleNamespace(plan=plan, raw=raw, ours=fastest(ours), monai=fastest(theirs),
                           monai_kept=fastest(theirs_kept))


# --- (c) host memory in child processes ----------------------------------------------------------------
def peak_rss_bytes() -> int:
    """This process's peak resident memory.

    On Linux VmHWM belongs to the process's own address space; ru_maxrss would also count the parent's
    memory that a forked child inherits before exec.
    """
    if sys.platform == "win32":
        import psutil

        return int(psutil.Process().memory_info().peak_wset)
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def child(args) -> None:
    device = pick_device(args.device)
    model = build(args.mem_model)
    settings = PredictSettings(tile=args.tile, overlap=args.overlap, batch=args.batch)
    report = {}
    if args.child in ("forward", "predict"):
        predictor = Predictor(model, product_model()[1] if args.mem_model == "nuclei-unet" else META, device=device)
        if args.child == "forward":
            x = torch.rand(args.batch, _in_channels(model), args.tile, args.tile, device=device)
            with torch.inference_mode():
                predictor.model(x)
        else:
            image = make_image(args.mem_size)
            start = clock()
            result = predictor.predict(image, settings)
            report["seconds"] = clock() - start
            report["tiles"] = result.tiles
            report["image_bytes"] = image.nbytes
            report["output_bytes"] = result.labels.nbytes + result.confidence.nbytes + result.uncertainty.nbytes
            if device.type == "cuda":
                report["gpu_peak"] = torch.cuda.max_memory_allocated(device)
    report["peak"] = peak_rss_bytes()
    print(json.dumps(report))


def run_child(args, kind: str) -> dict:
    command = [sys.executable, __file__, "--child", kind, "--device", args.device, "--tile", str(args.tile),
               "--threads", str(args.threads),
               "--overlap", str(args.overlap), "--batch", str(args.batch), "--mem-size", str(args.mem_size),
               "--mem-model", args.mem_model]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- report ----------------------------------------------------------------------------------------------
def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4096, help="image side for (a) and (b)")
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--overlap", type=float, default=0.25)
    parser.add_argument("--batch", type=int, default=1, help="tiles per forward (the product: 1 on a CPU)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--model", default="nuclei-unet",
                        help="nuclei-unet (the bundled model), bench-unet (defined here), tiny, or an architecture")
    parser.add_argument("--repeats", type=int, default=3, help="raw forward timings before and after")
    parser.add_argument("--rounds", type=int, default=1, help="alternating runs of ours and MONAI (best is kept)")
    parser.add_argument("--mem-size", type=int, default=8192, help="image side for (c)")
    parser.add_argument("--mem-model", default=None, help="model for (c); default: same as --model")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0: torch's default)")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall", help="what (a) and (b) time")
    parser.add_argument("--no-monai-kept", dest="monai_kept", action="store_false",
                        help="skip the reference run of MONAI inside segstudio's host-memory reuse")
    parser.add_argument("--skip", default="", help="comma list of parts to skip: a, b, c")
    parser.add_argument("--no-amp", dest="amp", action="store_false", help="full precision for (a), (b), (c)")
    parser.add_argument("--sizes", default="", help="(d): comma list of image sides, e.g. 8192,16384")
    parser.add_argument("--child", choices=["baseline", "forward", "predict"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.mem_model = args.mem_model or args.model
    if args.threads:
        torch.set_num_threads(args.threads)
    global clock
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    if args.child:
        child(args)
        return 0

    skip = set(filter(None, args.skip.split(",")))
    device = pick_device(args.device)
    model = build(args.model)
    # The product's model predicts with its own metadata (channels, normalisation, classes).
    predictor = Predictor(model, product_model()[1] if args.model == "nuclei-unet" else META, device=device)
    settings = PredictSettings(tile=args.tile, overlap=args.overlap, batch=args.batch, amp=args.amp)
    params = sum(p.numel() for p in model.parameters())
    print(f"device: {device_label(device)}; model: {args.model} ({params / 1e6:.2f} M parameters); "
          f"tile {args.tile}, overlap {args.overlap}, batch {args.batch}, "
          f"amp {amp_dtype(device) if args.amp else 'off'}; "
          f"timing {'process CPU time' if args.clock == 'cpu' else 'wall time'}")
    ok = True

    if not {"a", "b"} <= skip:
        image = make_image(args.size)
        speed = bench_speed(predictor, image, settings, args, with_monai="b" not in skip)
        tiles, ours = speed.plan.count, speed.ours
        per_tile = min(speed.raw)
        ratio = ours.seconds / (tiles * per_tile)
        print(f"\n(a) {args.size}x{args.size}: {tiles} tiles of {speed.plan.tile_h} px in {ours.seconds:.2f} s "
              f"(best of {args.rounds}); raw batched forward {per_tile * 1e3:.1f} ms/tile (best before "
              f"{speed.raw[0] * 1e3:.1f}, after {speed.raw[1] * 1e3:.1f})")
        print(f"    tiled / (tiles x raw per tile) = {ratio:.3f}   target <= 1.10   {verdict(ratio <= 1.10)}")
        rules = getattr(predictor.meta, "postprocess", None)
        if rules:
            start = clock()
            apply_postprocess(ours.result.labels.copy(), rules)
            post = clock() - start
            named = ", ".join(f"{k} {v}" for k, v in rules.items())
            print(f"    of which the model's clean-up of the whole mask ({named}) {post:.2f} s; without it the "
                  f"ratio is {(ours.seconds - post) / (tiles * per_tile):.3f}")
        if ours.forward_seconds:
            inside = ours.seconds / ours.forward_seconds
            print(f"    same run, total / time inside the model's forward = {inside:.3f} "
                  f"({ours.seconds - ours.forward_seconds:.2f} s outside the network)   {verdict(inside <= 1.10)}")
        if ours.gpu_peak is not None:
            print(f"    GPU peak allocated during the run: {ours.gpu_peak / 2**20:.0f} MiB")
        if "a" not in skip:
            ok &= ratio <= 1.10

        if "b" in skip:
            pass
        elif speed.monai is None:
            print("\n(b) MONAI sliding_window_inference: skipped (monai is not installed)")
        else:
            monai = speed.monai
            versus = ours.seconds / monai.seconds
            agree = float((monai.labels == ours.result.labels).mean())
            print(f"\n(b) MONAI sliding_window_inference (gaussian, same tile/overlap/batch, same outputs): "
                  f"{monai.seconds:.2f} s (best of {args.rounds}); labels agree on {agree:.2%} of pixels")
            print(f"    ours / MONAI (both inside the host-memory reuse) = {versus:.3f}   target <= 0.95   "
                  f"{verdict(versus <= 0.95)}")
            if ours.forward_seconds and monai.forward_seconds:
                print(f"    outside the network: ours {ours.seconds - ours.forward_seconds:.2f} s, MONAI "
                      f"{monai.seconds - monai.forward_seconds:.2f} s; inside it: ours {ours.forward_seconds:.2f} s, "
                      f"MONAI {monai.forward_seconds:.2f} s")
                # The same network runs the same tiles on both sides: on a shared CPU its time mostly
                # measures the neighbours. With the network's time set to the mean of both runs, what is
                # left is the work each does outside it.
                network = (ours.forward_seconds + monai.forward_seconds) / 2
                steady = ((ours.seconds - ours.forward_seconds + network)
                          / (monai.seconds - monai.forward_seconds + network))
                print(f"    with the network's time set equal on both sides: ours / MONAI = {steady:.3f}")
            kept = speed.monai_kept
            if kept is not None:
                outside = (f"; {kept.seconds - kept.forward_seconds:.2f} s outside the network"
                           if kept.forward_seconds else "")
                print(f"    for reference, MONAI without the host-memory reuse: "
                      f"{kept.seconds:.2f} s{outside}; ours / that = {ours.seconds / kept.seconds:.3f}")
            ok &= versus <= 0.95

    if "c" not in skip:
        baseline = run_child(args, "baseline")
        forward = run_child(args, "forward")
        run = run_child(args, "predict")
        extra = run["peak"] - baseline["peak"]
        beyond_forward = run["peak"] - forward["peak"]
        print(f"\n(c) {args.mem_size}x{args.mem_size} uint16, {NUM_CLASSES} classes, model {args.mem_model}: "
              f"{run['tiles']} tiles in {run['seconds']:.1f} s")
        print(f"    peak RSS: predict {run['peak'] / 2**20:.0f} MiB; baseline (import torch + build model) "
              f"{baseline['peak'] / 2**20:.0f} MiB; baseline + one batched forward {forward['peak'] / 2**20:.0f} MiB")
        print(f"    of which image {run['image_bytes'] / 2**20:.0f} MiB and outputs "
              f"{run['output_bytes'] / 2**20:.0f} MiB (labels uint8 + confidence and uncertainty float16)")
        print(f"    peak - baseline = {extra / 2**20:.0f} MiB   target well under 2048 MiB   "
              f"{verdict(extra < 2 * GIB)}")
        print(f"    peak - (baseline + forward) = {beyond_forward / 2**20:.0f} MiB (what the image size adds)")
        if "gpu_peak" in run:
            print(f"    GPU peak allocated: {run['gpu_peak'] / 2**20:.0f} MiB")
        ok &= extra < 2 * GIB

    if args.sizes:
        ok &= bench_sizes(predictor, settings, [int(v) for v in args.sizes.split(",")], model)
    return 0 if ok else 1


# --- (d) image sizes, precision, and NVIDIA's published U-Net figure ----------------------------------------
NVIDIA_UNET = {"images_per_s": 283.0, "side": 572, "card": "A100", "precision": "FP16"}


def forward_flops(model: nn.Module, in_channels: int, side: int) -> float:
    """FLOPs of one forward pass of a side x side image, counted by torch (a multiply-add is 2)."""
    from torch.utils.flop_counter import FlopCounterMode

    model = model.to("cpu").eval()
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        model(torch.zeros(1, in_channels, side, side))
    return float(counter.get_total_flops())


class OriginalUNet(nn.Module):
    """Ronneberger et al. 2015: unpadded 3x3 convolutions, 64..1024 channels, cropped skips; 572 -> 388 px."""

    def __init__(self):
        super().__init__()

        def block(cin, cout):
            return nn.Sequential(nn.Conv2d(cin, cout, 3), nn.ReLU(), nn.Conv2d(cout, cout, 3), nn.ReLU())

        widths = [64, 128, 256, 512, 1024]
        self.down = nn.ModuleList(block(a, b) for a, b in zip([1] + widths[:3], widths[:4]))
        self.bottom = block(512, 1024)
        self.up = nn.ModuleList(nn.ConvTranspose2d(w * 2, w, 2, stride=2) for w in reversed(widths[:4]))
        self.merge = nn.ModuleList(block(w * 2, w) for w in reversed(widths[:4]))
        self.head = nn.Conv2d(64, 2, 1)

    def forward(self, x):
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        x = self.bottom(x)
        for up, merge, skip in zip(self.up, self.merge, reversed(skips)):
            x = up(x)
            dy, dx = (skip.shape[-2] - x.shape[-2]) // 2, (skip.shape[-1] - x.shape[-1]) // 2
            x = merge(torch.cat([skip[..., dy:dy + x.shape[-2], dx:dx + x.shape[-1]], x], dim=1))
        return self.head(x)


def bench_sizes(predictor: Predictor, settings: PredictSettings, sides: list[int], model: nn.Module) -> bool:
    device = predictor.device
    print(f"\n(d) image sizes on {device_label(device)}: tile {settings.tile}, batch {settings.batch}")
    gpu_peaks: dict[bool, list[int]] = {True: [], False: []}
    best_mpx = 0.0
    for side in sides:
        image = make_image(side)
        for amp in (True, False):
            run = PredictSettings(tile=settings.tile, overlap=settings.overlap, batch=settings.batch, amp=amp)
            predictor.predict(image[: 2 * settings.tile, : 2 * settings.tile], run)  # warm: full batch and one tile
            timed = time_ours(predictor, image, run)
            mpx = side * side / 1e6 / timed.seconds
            best_mpx = max(best_mpx, mpx)
            peak = f"{timed.gpu_peak / 2**20:.0f} MiB" if timed.gpu_peak is not None else "n/a (not a GPU)"
            if timed.gpu_peak is not None:
                gpu_peaks[amp].append(timed.gpu_peak)
            print(f"    {side:6d}^2  amp {'on ' if amp else 'off'}: {timed.seconds:7.2f} s  {mpx:8.1f} Mpx/s  "
                  f"{timed.result.tiles} tiles  GPU peak {peak}")
        del image
    ok = True
    for amp, peaks in gpu_peaks.items():
        if len(peaks) >= 2:
            growth = peaks[-1] / peaks[0]
            flat = growth <= 1.5
            print(f"    GPU peak, amp {'on' if amp else 'off'}: {sides[-1]}^2 / {sides[0]}^2 = {growth:.2f} "
                  f"(pixels x{(sides[-1] / sides[0]) ** 2:.0f})   flat (<= 1.5)   {verdict(flat)}")
            ok &= flat
    ours_flops = forward_flops(model, _in_channels(model), 512) / (512 * 512 / 1e6)
    theirs = forward_flops(OriginalUNet(), 1, NVIDIA_UNET["side"])
    rate = NVIDIA_UNET["images_per_s"] * theirs
    scaled = rate / ours_flops
    print(f"    work: this model {ours_flops / 1e9:.1f} GFLOP per megapixel; the original U-Net "
          f"{theirs / 1e9:.0f} GFLOP per {NVIDIA_UNET['side']}^2 pass")
    print(f"    NVIDIA's U-Net, {NVIDIA_UNET['card']} {NVIDIA_UNET['precision']}: {NVIDIA_UNET['images_per_s']:.0f} "
          f"images/s = {rate / 1e12:.1f} TFLOP/s; at that rate this model would do {scaled:.0f} Mpx/s")
    print(f"    ours (best above, whole pipeline incl. reading, blending and outputs): {best_mpx:.0f} Mpx/s = "
          f"{best_mpx * ours_flops / 1e12:.1f} TFLOP/s of network work; ours / scaled NVIDIA = {best_mpx / scaled:.2f}")
    return ok


if __name__ == "__main__":
    raise SystemExit(main())
