"""Train each of the seven networks on the same generated nuclei data with one recipe and one budget, and
print a table: held-out IoU, parameters, training time, CPU time per 512 x 512 tile.

    python scripts/compare_networks.py [--steps 60] [--images 16] [--size 192] [--threads 2]
    python scripts/compare_networks.py --measure      # only the tile times (for models/catalogue.py)

Every network is made the way a user makes one (engine.new_model, the catalogue's default size, from
scratch, one grey input channel, classes background and nucleus), fine-tuned with engine.training (the
same loop as Model > Fine-tune) and scored by the Predictor on held-out generated images it never saw.
Models are written into a temporary library, never the user's.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def tile_seconds(arch: str) -> float:
    """Median seconds of one forward pass over a 512 x 512 one-channel tile (the New Model dialog's figure)."""
    from segstudio.engine.new_model import tile_seconds as measured

    return measured(arch, repeats=3)


def held_out_iou(model_id: str, images) -> float:
    import numpy as np

    from segstudio.engine.predict import Predictor, PredictSettings
    from segstudio.models.library import ModelLibrary
    from segstudio.synth import iou

    model, meta = ModelLibrary().load(model_id)
    predictor = Predictor(model, meta, device="cpu")
    scores = [iou(predictor.predict(image, PredictSettings(tile=256, batch=1)).labels > 0, mask > 0)
              for image, mask in images]
    return float(np.mean(scores))


def train_one(arch: str, data: Path, args) -> tuple[str, float]:
    from segstudio.engine.new_model import NewModelSpec, classes_from_names, create_model
    from segstudio.engine.training.config import TrainConfig
    from segstudio.engine.training.loop import fine_tune

    made = create_model(NewModelSpec(name=f"compare-{arch}", arch=arch,
                                     classes=classes_from_names("background,nucleus"), input="grey"))
    start = time.perf_counter()
    result = fine_tune(TrainConfig(base=made.meta.id, data=[data], steps=args.steps, batch_size=args.batch,
                                   crop=args.crop, lr=args.lr, device="cpu", seed=0, num_workers=0,
                                   force_promote=False))
    return result.version, time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60, help="training steps per network (the budget)")
    parser.add_argument("--images", type=int, default=16, help="generated training images")
    parser.add_argument("--held-out", type=int, default=6, help="generated images for the score")
    parser.add_argument("--size", type=int, default=192, help="side of the generated images")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--arch", action="append", help="only these networks (repeatable)")
    parser.add_argument("--measure", action="store_true", help="only measure the time per 512 x 512 tile")
    args = parser.parse_args(argv)
    os.environ["SEGSTUDIO_DATA_DIR"] = tempfile.mkdtemp(prefix="segstudio-compare-")  # never the user's library

    import torch

    from segstudio.models.catalogue import NETWORKS
    from segstudio.synth import generate_nuclei_image, make_training_set

    torch.set_num_threads(args.threads)
    choices = [n for n in NETWORKS if not args.arch or n.arch in args.arch]
    if args.measure:
        for choice in choices:
            print(f"{choice.arch:<14} {tile_seconds(choice.arch):.2f} s per 512 x 512 tile")
        return 0
    data = make_training_set(Path(os.environ["SEGSTUDIO_DATA_DIR"]) / "train", args.images, seed=101, size=args.size)
    held = [generate_nuclei_image(9000 + i, height=args.size, width=args.size, bit_depth=8 if i % 2 else 16)[:2]
            for i in range(args.held_out)]
    print(f"Recipe: {args.images} generated {args.size}px images, {args.steps} steps, batch {args.batch}, crop "
          f"{args.crop}, AdamW lr {args.lr}, from scratch, {args.threads} CPU threads; held out: {args.held_out} "
          "images.\n")
    print("| network | held-out IoU | parameters | training time | CPU time per 512x512 tile |")
    print("| --- | --- | --- | --- | --- |")
    for choice in choices:
        version, seconds = train_one(choice.arch, data, args)
        score = held_out_iou(version, held)
        print(f"| {choice.title} | {score:.3f} | {choice.parameters / 1e6:.1f} M | {seconds:.0f} s | "
              f"{tile_seconds(choice.arch):.2f} s |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
