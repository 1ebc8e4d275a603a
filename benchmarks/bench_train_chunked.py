"""Memory of the training loader on datasets larger than the pixels it may keep in memory.

Builds datasets of growing size (1024 x 1024 uint16 images by default) whose total pixels exceed the cap
set on the loader (``--cap``), so training reads them crop by crop from chunked copies, and measures the
process's resident memory (RSS) while a DataLoader draws crops from each. Then, in the same process, the
largest dataset is loaded the old way (every image in memory) as the baseline.

    python benchmarks/bench_train_chunked.py                          # 8, 16, 32 images of 1024^2
    python benchmarks/bench_train_chunked.py --images 16 64 128 --crops 400

Prints RSS figures per dataset size, the growth of RSS from the smallest to the largest chunked dataset,
the growth of loading the largest one whole, and PASS when the chunked growth stays under ``--flat-mb``
while the dataset grows by a factor of (largest / smallest).
"""
from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

NORMALISATION = {"kind": "percentile", "low": 1.0, "high": 99.8}


def rss_mb() -> float:
    """Resident memory of this process now (Linux /proc), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def write_dataset(folder: Path, images: int, size: int, seed: int = 0) -> Path:
    """Bright disks on noise, exported through core.dataset one image at a time."""
    from segstudio.core.dataset import ExportItem, export_many
    from segstudio.core.labels import ClassTable

    classes = ClassTable.from_list([{"id": 0, "name": "background", "color": [0, 0, 0]},
                                    {"id": 1, "name": "nucleus", "color": [255, 0, 0]}])

    def items():
        rng = np.random.default_rng(seed)
        yy, xx = np.mgrid[:size, :size]
        for i in range(images):
            mask = np.zeros((size, size), np.uint8)
            for cy, cx in rng.integers(20, size - 20, size=(40, 2)):
                mask[(yy - cy) ** 2 + (xx - cx) ** 2 <= 144] = 1
            pixels = (rng.normal(300, 60, (size, size)) + mask * 1000.0).clip(0, 65535).astype(np.uint16)
            yield ExportItem(pixels=pixels, mask=mask, source=f"synthetic:{seed}:{i}", hand=mask)

    export_many(folder, items(), classes)
    return folder


def crops_rss(data: Path, chunk_dir: Path, cap: int, crop: int, batch: int, crops: int, workers: int) -> dict:
    import torch

    from segstudio.engine.training.data import CropDataset, load_training_data

    gc.collect()
    before = rss_mb()
    t0 = time.perf_counter()
    loaded = load_training_data([data], in_channels=1, normalisation=NORMALISATION, num_classes=2,
                                val_whole_max_pixels=1 << 20, in_memory_max_pixels=cap, chunk_dir=chunk_dir)
    load_s = time.perf_counter() - t0
    after_load = rss_mb()
    dataset = CropDataset(loaded.train, crop, augment=True, strength=1.0, hand_weight=3.0, seed=0)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch, shuffle=True, num_workers=workers)
    peak, drawn = after_load, 0
    t0 = time.perf_counter()
    for x, _y, _w in loader:
        drawn += x.shape[0]
        peak = max(peak, rss_mb())
        if drawn >= crops:
            break
    crops_s = time.perf_counter() - t0
    result = {"before": before, "loaded": after_load, "peak": peak, "load_s": load_s,
              "crops_per_s": drawn / crops_s, "chunked": type(loaded.train[0]).__name__ == "ChunkedImage"}
    del loader, dataset, loaded
    gc.collect()
    return result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, nargs="+", default=[8, 16, 32], help="dataset sizes to measure")
    p.add_argument("--size", type=int, default=1024, help="image side in pixels")
    p.add_argument("--cap", type=int, default=4 * 1024 * 1024, help="pixels the loader may keep in memory")
    p.add_argument("--crop", type=int, default=256)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--crops", type=int, default=256, help="crops drawn from each dataset")
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--flat-mb", type=float, default=64.0,
                   help="PASS when chunked RSS grows by less than this from the smallest to the largest dataset")
    args = p.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="segstudio-bench-chunked-") as tmp:
        root = Path(tmp)
        print(f"images of {args.size}^2 px uint16, loader cap {args.cap:,} px, crop {args.crop}, "
              f"batch {args.batch}, {args.crops} crops per dataset")
        # A warm-up run first: torch's, zarr's and the allocator's one-off costs are not the dataset's.
        crops_rss(write_dataset(root / "warm", 2, args.size, seed=1), root / "chunks", 0, args.crop, args.batch,
                  args.batch * 4, args.workers)
        base = rss_mb()
        print(f"RSS after warm-up: {base:.1f} MB (the baseline below)")
        rows = []
        for n in sorted(args.images):
            data = write_dataset(root / f"data{n}", n, args.size)
            pixels = n * args.size * args.size
            r = crops_rss(data, root / "chunks", args.cap, args.crop, args.batch, args.crops, args.workers)
            rows.append((n, pixels, r))
            print(f"chunked   {n:4d} images {pixels / 1e6:7.1f} Mpx ({pixels / args.cap:5.1f}x cap): RSS after copies "
                  f"{r['loaded']:7.1f} MB, peak while drawing crops {r['peak']:7.1f} MB ({r['peak'] - base:+6.1f} MB); "
                  f"copies {r['load_s']:.1f} s, {r['crops_per_s']:.0f} crops/s"
                  + ("" if r["chunked"] else "  (NOT chunked)"))
        n, pixels, _ = rows[-1]
        whole = crops_rss(root / f"data{n}", root / "chunks", None, args.crop, args.batch, args.crops, args.workers)
        print(f"in memory {n:4d} images {pixels / 1e6:7.1f} Mpx (no cap):        RSS after loading "
              f"{whole['loaded']:7.1f} MB, peak while drawing crops {whole['peak']:7.1f} MB "
              f"({whole['peak'] - base:+6.1f} MB); loading {whole['load_s']:.1f} s, {whole['crops_per_s']:.0f} crops/s")
    chunked_growth = rows[-1][2]["peak"] - rows[0][2]["peak"]
    chunked_cost = max(r["peak"] for _, _, r in rows) - base
    whole_cost = whole["peak"] - base
    factor = rows[-1][1] / rows[0][1]
    print(f"dataset grew {factor:.0f}x: chunked peak RSS changed by {chunked_growth:+.1f} MB and stayed within "
          f"{chunked_cost:.1f} MB of the baseline; the largest dataset in memory costs {whole_cost:.1f} MB "
          f"({whole_cost / max(chunked_cost, 1.0):.0f}x the chunked loader's most)")
    ok = all(r["chunked"] for _, _, r in rows) and chunked_growth < args.flat_mb
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
