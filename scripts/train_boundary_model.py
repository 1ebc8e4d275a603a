"""Train the nuclei model with a boundary output: the bundled U-Net's classes plus a third output, the border
between objects, learnt from generated slides whose every nucleus is known (segstudio.synth).

    python scripts/train_boundary_model.py --out build/boundary            # 20-40 minutes on a 2-core CPU
    python scripts/train_boundary_model.py --quick --out build/boundary    # a few minutes, to check the recipe

It starts from the bundled model's weights (the classes' layers carried over, the border layer new), trains
classes and borders together, scores object F1 on the held-out generated set of scripts/eval_objects.py for
the bundled model (distance-transform split) and for the new one (split along its borders), and writes
``nuclei-unet.safetensors`` (metadata ``objects.boundary_channel = 2``) into --out. It never writes into
resources/: the bundled model was made this way (2,600 steps), then scored for its card with
``train_default_model.py --evaluate-only FILE`` (pixel scores) and copied there.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from torchvision import tv_tensors

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import eval_objects  # noqa: E402
import train_default_model as base  # noqa: E402

from segstudio import synth  # noqa: E402
from segstudio.core.objects.instances import boundary_target, find_instances  # noqa: E402
from segstudio.engine.predict import Predictor, PredictSettings, prepare_input  # noqa: E402
from segstudio.engine.training.augment import build_augmentation  # noqa: E402
from segstudio.engine.training.objective import boundary_loss, segmentation_loss  # noqa: E402
from segstudio.models.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from segstudio.models.library import ModelLibrary  # noqa: E402
from segstudio.models.registry import build_model  # noqa: E402
from segstudio.models.transfer import transfer_weights  # noqa: E402

BOUNDARY_CHANNEL = 2  # after background (0) and nucleus (1)


def make_pool(n: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n normalised images with their class masks and instance maps (the same draw as the default model's)."""
    rng = np.random.default_rng(seed)
    images = np.empty((n, size, size), np.float32)
    masks = np.empty((n, size, size), np.uint8)
    ids = np.empty((n, size, size), np.int32)
    for i in range(n):
        bit_depth = 8 if rng.random() < 0.4 else 16
        image, masks[i], ids[i] = synth.generate_nuclei_image(int(rng.integers(2**31)), height=size, width=size,
                                                              bit_depth=bit_depth)
        images[i] = prepare_input(image[..., None], 1, base.NORMALISATION)[0]
    return images, masks, ids


def _crop(pool, i: int, crop: int, rng: np.random.Generator):
    """A window of image i at a random magnification (0.6x to 1.7x), resized to crop x crop."""
    images, masks, ids = pool
    h, w = masks.shape[1:]
    scale = float(np.exp(rng.uniform(np.log(0.6), np.log(1.7))))
    window = min(h, w, max(16, int(round(crop / scale))))
    y0, x0 = int(rng.integers(h - window + 1)), int(rng.integers(w - window + 1))
    parts = [a[i, y0:y0 + window, x0:x0 + window] for a in (images, masks, ids)]
    if window != crop:
        parts[0] = cv2.resize(parts[0], (crop, crop), interpolation=cv2.INTER_AREA if window > crop
                              else cv2.INTER_LINEAR)
        parts[1:] = [cv2.resize(p, (crop, crop), interpolation=cv2.INTER_NEAREST) for p in parts[1:]]
    return parts


def batches(pool, batch: int, crop: int, rng: np.random.Generator, augment):
    """(images, class targets, border targets, weights): borders drawn on the instance map after the same
    flips and turns as the image, so they lie where the augmented nuclei meet."""
    n = pool[0].shape[0]
    while True:
        xs, ys, bs, ws = [], [], [], []
        for _ in range(batch):
            src, lab, ids = _crop(pool, int(rng.integers(n)), crop, rng)
            image = tv_tensors.Image(torch.from_numpy(np.ascontiguousarray(src)[None].copy()))
            targets = np.stack([lab.astype(np.int32), np.zeros_like(ids), np.ones_like(ids), ids])
            image, target = augment(image, tv_tensors.Mask(torch.from_numpy(targets)))
            target = target.as_subclass(torch.Tensor)
            xs.append(image.as_subclass(torch.Tensor))
            ys.append(target[0].long())
            ws.append(target[2].float())
            bs.append(torch.from_numpy(boundary_target(target[3].numpy())).float())
        yield torch.stack(xs), torch.stack(ys), torch.stack(bs), torch.stack(ws)


def start_from_bundled(name: str):
    """Another bundled network (``--model``) with a third output: its weights kept, the border layer new."""
    bundled, meta = ModelLibrary().load(name, device="cpu")
    options = {k: v for k, v in meta.config.items() if k not in ("in_channels", "num_classes")}
    options["pretrained_backbone"] = False
    model = build_model(meta.arch, in_channels=1, num_classes=3, **options)
    report = transfer_weights(bundled, model, {0: 0, 1: 1})
    print(f"started from {meta.id}: {len(report.kept)} tensors kept", flush=True)
    return model, meta


def start_model(base_width: int, start: Path | None = None):
    """A 3-output U-Net with the bundled model's weights where they fit (its two classes' rows included), or
    a model this script wrote before (``start``), to train further."""
    if start is not None:
        model, _meta = load_checkpoint(start)
        print(f"continuing from {start}", flush=True)
        return model
    model = build_model("unet", in_channels=1, num_classes=3, base_channels=base_width, depth=4)
    try:
        bundled, _meta = ModelLibrary().load("nuclei-unet", device="cpu")
    except Exception as err:  # no bundled model here: train from scratch
        print(f"starting from scratch ({err})", flush=True)
        return model
    report = transfer_weights(bundled, model, {0: 0, 1: 1})
    print(f"started from the bundled model: {len(report.kept)} tensors kept, class rows of "
          f"{', '.join(report.class_rows)} carried over", flush=True)
    return model


def train(model, pool, args) -> float:
    stream = batches(pool, args.batch, args.crop, np.random.default_rng(0), build_augmentation(1.0))

    def loss_of_a_batch():
        x, y, b, w = next(stream)
        logits = model(x)
        return segmentation_loss(logits[:, :BOUNDARY_CHANNEL], y, w) + args.boundary_weight * boundary_loss(
            logits[:, BOUNDARY_CHANNEL], b, w)

    minutes = base.optimise(model, args.steps, args.lr, loss_of_a_batch)
    model.eval()
    return minutes


def object_scores(predictors: dict, images: int, size: int) -> dict:
    """Object precision/recall/F1 and count error of each predictor on eval_objects.py's held-out images."""
    rows: dict[str, list] = {name: [] for name in predictors}
    rows["watershed fallback on the true mask (the split alone)"] = []
    rng = np.random.default_rng(eval_objects.EVAL_SEED)
    for _ in range(images):
        image, mask, truth = synth.generate_nuclei_image(int(rng.integers(2**31)), height=size, width=size,
                                                         bit_depth=16)
        rows["watershed fallback on the true mask (the split alone)"].append(
            eval_objects.match_counts(truth, find_instances(mask, None)))
        for name, predict in predictors.items():
            result = predict(image)
            rows[name].append(eval_objects.match_counts(truth, find_instances(result.labels, result.boundary)))
    return {name: eval_objects.scores(found) for name, found in rows.items()}


def _runner(model, meta):
    predictor = Predictor(model, meta, device="cpu")
    return lambda image: predictor.predict(image[..., None], PredictSettings(tile=512, device="cpu"))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny run to check the recipe")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--batch", type=int, default=6)
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--pool", type=int, default=600, help="generated training images")
    parser.add_argument("--base", type=int, default=16, help="U-Net base width (the bundled model's)")
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--boundary-weight", type=float, default=1.0)
    parser.add_argument("--eval-images", type=int, default=40, help="held-out images for object F1")
    parser.add_argument("--out", type=Path, help="folder for the new model (never resources/)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: all cores)")
    parser.add_argument("--start", type=Path, metavar="CHECKPOINT", help="train further a model this script wrote")
    parser.add_argument("--score-only", type=Path, metavar="CHECKPOINT",
                        help="only score a model this script wrote (object F1 against the bundled model)")
    parser.add_argument("--model", default="nuclei-unet",
                        help="the bundled model to give a border output (its network and weights)")
    parser.add_argument("--reference", default="nuclei-unet", metavar="FILE_OR_ID",
                        help="the model without a border output to score beside it (default: the bundled one)")
    args = parser.parse_args(argv)
    if args.score_only:
        model, meta = load_checkpoint(args.score_only)
        return score(model, meta, args.score_only, args.eval_images, args.reference)
    if args.out is None:
        parser.error("--out is needed to train (only --score-only goes without it)")
    if args.quick:
        args.steps, args.pool, args.eval_images = 40, 24, 6
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    started = time.time()
    print(f"generating {args.pool} training images...", flush=True)
    pool = make_pool(args.pool, 256, base.TRAIN_SEED)
    print(f"  done in {time.time() - started:.0f} s", flush=True)
    if args.model != "nuclei-unet":
        return train_other(args, pool)
    model = start_model(args.base, args.start)
    minutes = train(model, pool, args)
    meta = base.ModelMeta(
        name="nuclei-unet", version=1, arch="unet", config=dict(model.config), classes=base.CLASSES, in_channels=1,
        normalisation=base.NORMALISATION, postprocess=dict(base.POSTPROCESS),
        expects={"kind": "fluorescence", "stain": "nuclear"}, objects={"boundary_channel": BOUNDARY_CHANNEL},
        description="U-Net for fluorescence nuclei with a border output that splits touching nuclei, trained on "
                    "generated slides.",
        training={"data": f"{args.pool} generated 256x256 images (segstudio.synth, seeds from {base.TRAIN_SEED})",
                  "start": "nuclei-unet without a border output (scripts/train_default_model.py)",
                  "steps": args.steps, "batch": args.batch, "crop": args.crop,
                  "lr": args.lr, "loss": "cross-entropy + soft Dice; borders: binary cross-entropy + soft Dice "
                                         f"(weight {args.boundary_weight})", "train_minutes_cpu": round(minutes, 1)})
    args.out.mkdir(parents=True, exist_ok=True)
    target = args.out / "nuclei-unet.safetensors"
    save_checkpoint(target, model, meta)  # before scoring, so a long scoring cut short loses no training
    print(f"wrote {target}", flush=True)
    return score(model, meta, target, args.eval_images)


def train_other(args, pool) -> int:
    """``--model NAME``: the same recipe for another bundled network; written as <out>/<NAME>.safetensors."""
    import dataclasses

    model, parent = start_from_bundled(args.model)
    minutes = train(model, pool, args)
    meta = dataclasses.replace(
        parent, config=dict(model.config), objects={"boundary_channel": BOUNDARY_CHANNEL}, metrics={},
        description=parent.description.replace(", trained", " and a border output that splits touching nuclei, "
                                                "trained", 1),
        training={**parent.training, "borders": f"then {args.steps} steps of {args.batch} crops of {args.crop} px "
                  f"from those weights with a border output (scripts/train_boundary_model.py --model "
                  f"{args.model}), lr {args.lr}: {round(minutes, 1)} min"})
    args.out.mkdir(parents=True, exist_ok=True)
    target = args.out / f"{args.model}.safetensors"
    save_checkpoint(target, model, meta)
    print(f"wrote {target}", flush=True)
    return score(model, meta, target, args.eval_images, args.reference)


def score(model, meta, target: Path, images: int, reference: str = "nuclei-unet") -> int:
    """Object F1 of the new model and of the bundled one on the same held-out images, into the file's metrics."""
    predictors = {"this model: split along its border output": _runner(model, meta)}
    try:
        predictors[f"the previous {meta.name} (no border output): watershed fallback on its mask"] = _runner(
            *ModelLibrary().load(reference, device="cpu"))
    except Exception as err:
        print(f"the bundled model is not scored: {err}")
    found = object_scores(predictors, images, 256)
    print(f"\n{images} held-out generated 256x256 images (seeds from {eval_objects.EVAL_SEED})")
    print("| objects from | precision | recall | F1 | count error |\n| --- | --- | --- | --- | --- |")
    for name, s in found.items():
        print(f"| {name} | {s['precision']:.3f} | {s['recall']:.3f} | {s['f1']:.3f} | {100 * s['count_error']:.1f}% |")
    objects = {name: {k: float(v) for k, v in s.items()} for name, s in found.items()}
    meta.metrics = {**(meta.metrics or {}), "objects_heldout": objects}
    save_checkpoint(target, model, meta)
    (target.parent / "object-scores.json").write_text(json.dumps(meta.metrics, indent=2))
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
