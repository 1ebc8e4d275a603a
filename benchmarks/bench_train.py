"""Training throughput of segstudio's fine-tune loop against a plain PyTorch loop on the same work.

Both train the same network (loaded from the same base version) on the same normalised images with the
same batch and crop size, AdamW, and cross-entropy + soft Dice, in the same process. The plain loop is the
fastest simple thing: every image pre-loaded on the device, crops cut there, no loader, no augmentation,
no progress, no checks. The ratio shows what our loop costs for its data pipeline, cancel polling,
non-finite-loss checks and progress events. Validation and saving are reported separately ("end to end").

    python benchmarks/bench_train.py                     # CPU-sized defaults
    python benchmarks/bench_train.py --device cuda --base-channels 32 --depth 4 --crop 256 --batch 16 \
        --steps 300 --images 64 --size 512

Prints figures for each round, the best of each, ours/plain and PASS when the ratio is at least 0.9.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

TARGET = 0.9


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--depth", type=int, default=3)
    p.add_argument("--base-channels", type=int, default=16)
    p.add_argument("--images", type=int, default=30, help="dataset images (about 1 in 5 is validation)")
    p.add_argument("--size", type=int, default=256, help="image side in pixels")
    p.add_argument("--crop", type=int, default=128)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--steps", type=int, default=30, help="timed optimisation steps per run")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps before each timed run")
    p.add_argument("--rounds", type=int, default=3, help="alternating plain/ours rounds (best is kept)")
    p.add_argument("--workers", type=int, default=-1)
    p.add_argument("--augment", action="store_true", help="also time our loop with augmentation on")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: leave torch's default)")
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                   help="wall time, or process CPU time (steadier on a machine shared with other jobs; "
                        "meaningful with --threads 1 and --workers 0)")
    return p.parse_args(argv)


def write_dataset(root: Path, n: int, size: int, seed: int = 0) -> Path:
    """Bright blobs on a dark noisy background in the dataset-folder layout (core.dataset)."""
    import hashlib
    import json

    import cv2
    import tifffile

    rng = np.random.default_rng(seed)
    for sub in ("images", "masks", "hand"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[:size, :size]
    entries = []
    for i in range(n):
        mask = np.zeros((size, size), np.uint8)
        for _ in range(int(rng.integers(size // 24, size // 12))):
            cy, cx = rng.integers(8, size - 8, size=2)
            r = rng.uniform(5, 14)
            mask[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = 1
        pixels = np.clip(rng.normal(300, 60, mask.shape) + mask * rng.uniform(900, 1400), 0, 65535)
        pixels = pixels.astype(np.uint16)
        sha = hashlib.sha256(pixels.tobytes()).hexdigest()
        eid = sha[:16]
        tifffile.imwrite(root / "images" / f"{eid}.tif", pixels)
        cv2.imwrite(str(root / "masks" / f"{eid}.png"), mask)
        cv2.imwrite(str(root / "hand" / f"{eid}.png"), np.zeros_like(mask))
        entries.append({"id": eid, "image": f"images/{eid}.tif", "mask": f"masks/{eid}.png",
                        "hand": f"hand/{eid}.png", "source": f"/bench/{i}.tif", "sha256": sha,
                        "model_version": None, "hand_fraction": 0.0,
                        "split": "val" if i % 5 == 0 else "train", "height": size, "width": size,
                        "channels": 1, "dtype": "uint16", "updated": "2026-01-01T00:00:00+00:00"})
    classes = [{"id": 0, "name": "background", "color": [0, 0, 0]},
               {"id": 1, "name": "nucleus", "color": [255, 0, 0]}]
    (root / "dataset.json").write_text(json.dumps({"format": "segstudio-dataset", "version": 1,
                                                   "classes": classes, "entries": entries}))
    return root


def _clock(kind: str) -> float:
    return time.process_time() if kind == "cpu" else time.perf_counter()


def plain_loop(model, images, labels, *, steps, warmup, batch, crop, lr, device, amp, clock):
    """The reference: tensors on the device, crops by indexing, nothing else. Returns images/s."""
    import torch

    from segstudio.engine.training.objective import segmentation_loss

    model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    scaler = torch.amp.GradScaler(device.type, enabled=amp == torch.float16)
    images = [x.to(device) for x in images]
    labels = [y.to(device) for y in labels]
    g = torch.Generator().manual_seed(0)

    def batch_of_crops():
        xs, ys = [], []
        for _ in range(batch):
            i = int(torch.randint(len(images), (1,), generator=g))
            h, w = labels[i].shape
            y0 = int(torch.randint(h - crop + 1, (1,), generator=g))
            x0 = int(torch.randint(w - crop + 1, (1,), generator=g))
            xs.append(images[i][:, y0:y0 + crop, x0:x0 + crop])
            ys.append(labels[i][y0:y0 + crop, x0:x0 + crop])
        return torch.stack(xs), torch.stack(ys)

    def step():
        x, y = batch_of_crops()
        with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
            logits = model(x)
        loss = segmentation_loss(logits, y)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    for _ in range(warmup):
        step()
    _sync(device)
    t0 = _clock(clock)
    for _ in range(steps):
        step()
    _sync(device)
    return steps * batch / (_clock(clock) - t0)


def _sync(device):
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv=None) -> int:
    args = parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="segstudio-bench-train-"))
    os.environ["SEGSTUDIO_DATA_DIR"] = str(work / "user-data")  # a private library; nothing of the user's
    import torch

    from segstudio.core.dataset import load_entry, load_manifest
    from segstudio.core.paths import user_models_dir
    from segstudio.engine.devices import amp_dtype, device_label, pick_device
    from segstudio.engine.hostmem import keep_host_memory
    from segstudio.engine.hostmem import supported as hostmem_supported
    from segstudio.engine.predict import prepare_input
    from segstudio.engine.training.config import TrainConfig
    from segstudio.engine.training.loop import fine_tune
    from segstudio.models.checkpoint import ModelMeta, save_checkpoint
    from segstudio.models.library import ModelLibrary
    from segstudio.models.registry import build_model

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    amp = amp_dtype(device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # for both loops
    data = write_dataset(work / "data", args.images, args.size)
    torch.manual_seed(0)
    net = build_model("unet", in_channels=1, num_classes=2, depth=args.depth, base_channels=args.base_channels)
    meta = ModelMeta(name="bench", version=1, arch="unet", config=dict(net.config),
                     classes=[{"id": 0, "name": "background", "color": [0, 0, 0]},
                              {"id": 1, "name": "nucleus", "color": [255, 0, 0]}], in_channels=1)
    save_checkpoint(user_models_dir() / "bench" / "v1.safetensors", net, meta)
    library = ModelLibrary()
    params = sum(p.numel() for p in net.parameters())

    manifest = load_manifest(data)
    train_entries = [e for e in manifest["entries"] if e["split"] == "train"]
    images, labels = [], []
    for entry in train_entries:
        pixels, mask, _ = load_entry(data, entry)
        images.append(torch.from_numpy(prepare_input(pixels, 1, meta.normalisation)))
        labels.append(torch.from_numpy(mask.astype(np.int64)))

    print(f"device: {device_label(device)}; amp: {amp}; torch threads: {torch.get_num_threads()}")
    print(f"model: unet depth {args.depth}, base {args.base_channels} ({params / 1e6:.2f} M parameters); "
          f"{len(train_entries)} training images of {args.size}^2; batch {args.batch}, crop {args.crop}, "
          f"{args.steps} timed steps; clock: {args.clock}")

    def ours(augment: bool) -> tuple[float, float]:
        common = dict(base="bench/v1", data=[data], lr=1e-3, batch_size=args.batch, crop=args.crop,
                      device=str(device), num_workers=args.workers, augment=augment, seed=0,
                      name="bench-out")
        fine_tune(TrainConfig(steps=args.warmup, **common), library=library)  # warm caches and kernels
        t0 = _clock(args.clock)
        result = fine_tune(TrainConfig(steps=args.steps, **common), library=library)
        total = _clock(args.clock) - t0
        t = result.timing
        train = t["train_cpu_s"] if args.clock == "cpu" else t["train_s"]
        return t["samples"] / train, t["samples"] / total

    def plain(keep_memory: bool = True) -> float:
        # fine_tune keeps freed host memory for reuse (engine/hostmem.py); the plain loop gets the same, so
        # the ratio measures the loops themselves.
        model, _ = library.load("bench/v1")
        with keep_host_memory() if keep_memory else contextlib.nullcontext():
            return plain_loop(model, images, labels, steps=args.steps, warmup=args.warmup, batch=args.batch,
                              crop=args.crop, lr=1e-3, device=device, amp=amp, clock=args.clock)

    plain_rates, our_rates, our_e2e = [], [], []
    for r in range(args.rounds):
        plain_rates.append(plain())
        rate, e2e = ours(augment=False)
        our_rates.append(rate)
        our_e2e.append(e2e)
        print(f"round {r + 1}: plain {plain_rates[-1]:8.1f} img/s   ours {rate:8.1f} img/s "
              f"(end to end incl. validation and save {e2e:8.1f} img/s)")
    if hostmem_supported():
        print(f"for reference, the plain loop with malloc's usual behaviour (freed blocks returned to the "
              f"system): {plain(keep_memory=False):.1f} img/s")
    best_plain, best_ours = max(plain_rates), max(our_rates)
    ratio = best_ours / best_plain
    print(f"best: plain {best_plain:.1f} img/s, ours {best_ours:.1f} img/s, ours/plain = {ratio:.3f} "
          f"(median of rounds {statistics.median(our_rates) / statistics.median(plain_rates):.3f}); "
          f"end to end {max(our_e2e) / best_plain:.3f} of plain")
    if args.augment:
        rate, e2e = ours(augment=True)
        print(f"ours with augmentation: {rate:.1f} img/s ({rate / best_plain:.3f} of plain without)")
    verdict = "PASS" if ratio >= TARGET else "FAIL"
    print(f"{verdict}: ours/plain {ratio:.3f} (target >= {TARGET})")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    raise SystemExit(main())
