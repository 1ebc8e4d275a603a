"""Train the bundled models beside nuclei-unet: an FCN-8s and a DeepLabv3+ for fluorescence nuclei.

    python scripts/train_bundled_models.py nuclei-fcn8s          # about 15-30 minutes on a 2-core CPU
    python scripts/train_bundled_models.py nuclei-deeplabv3plus
    python scripts/train_bundled_models.py nuclei-fcn8s --quick  # a minute, for checking the recipe

Same data, held-out images and scores as the default model (scripts/train_default_model.py): generated
slides only (segstudio.synth, training seeds from 1,000, held-out seeds from 9,000,000), never a real
image. Each run writes resources/models/<name>.safetensors and its model card <name>.md, and prints the
held-out IoU and the object F1 (scripts/eval_objects.py's matching on its own held-out seeds).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from eval_objects import EVAL_SEED as OBJECTS_SEED  # noqa: E402
from eval_objects import match_counts, scores  # noqa: E402
from train_default_model import (  # noqa: E402
    CLASSES,
    EVAL_SEED,
    NORMALISATION,
    POSTPROCESS,
    TRAIN_SEED,
    batches,
    evaluate,
    make_pool,
    optimise,
)

from segstudio import synth  # noqa: E402
from segstudio.core.objects.instances import split_touching  # noqa: E402
from segstudio.engine.predict import Predictor, PredictSettings  # noqa: E402
from segstudio.engine.training.augment import build_augmentation  # noqa: E402
from segstudio.engine.training.objective import segmentation_loss  # noqa: E402
from segstudio.models.checkpoint import ModelMeta, read_meta, save_checkpoint  # noqa: E402
from segstudio.models.registry import build_model  # noqa: E402


@dataclass(frozen=True)
class Recipe:
    arch: str
    title: str
    config: dict
    lr: float
    steps: int
    description: str
    architecture_text: str
    batch: int = 8
    crop: int = 128
    notes: tuple[str, ...] = field(default_factory=tuple)


RECIPES = {
    "nuclei-fcn8s": Recipe(
        "fcn8s", "FCN-8s", {"width": 0.25, "fc_channels": 128}, 1e-3, 3000,
        "FCN-8s for fluorescence nuclei (DAPI/Hoechst-like stains), trained on generated slides.",
        "FCN-8s (Long, Shelhamer & Darrell 2015): the five VGG16 stages at a quarter of the published widths, "
        "the classifier turned into convolutions (fc6 a 7x7 convolution, fc7 1x1), class scores at 1/32 of "
        "the image, fused with scores from pool4 (1/16) and pool3 (1/8) and upsampled by transposed "
        "convolutions that start out as bilinear interpolation. The skip score layers start at zero, as in "
        "the paper, so training begins from the 1/32 stream and adds the finer streams as they help.",
        notes=("Outlines come from a 1/8-size score map upsampled x8: outlines are coarse and small nuclei "
               "suffer most (IoU {half:.3f} at half magnification); many nuclei do not come out as objects of "
               "their own after the split (object recall {recall:.3f}).",)),
    "nuclei-deeplabv3plus": Recipe(
        "deeplabv3plus", "DeepLabv3+", {"backbone": "resnet18", "width": 0.4, "output_stride": 16}, 3e-3, 3000,
        "DeepLabv3+ for fluorescence nuclei (DAPI/Hoechst-like stains), trained on generated slides.",
        "DeepLabv3+ (Chen et al. 2018): a ResNet-18 at 0.4 of its published widths, atrous at output stride "
        "16, atrous spatial pyramid pooling (rates 6, 12, 18 and the image average) and a decoder that "
        "joins the context with 1/4-size detail from the first ResNet stage.",
        notes=("The decoder works at 1/4 of the image size: small nuclei lose most (IoU {half:.3f} at half "
               "magnification).",)),
}


def object_scores(predictor: Predictor, n: int, size: int) -> dict:
    """Object precision/recall/F1 at IoU 0.5 after the watershed split, on eval_objects.py's held-out seeds."""
    rng = np.random.default_rng(OBJECTS_SEED)
    rows = []
    for _ in range(n):
        image, _, truth = synth.generate_nuclei_image(int(rng.integers(2**31)), height=size, width=size,
                                                      bit_depth=16)
        labels = predictor.predict(image[..., None], PredictSettings(tile=512, device="cpu")).labels
        rows.append(match_counts(truth, split_touching(labels)))
    found = scores(rows)
    found["images"], found["size"] = n, size
    return found


def zero_skip_scores(model) -> None:
    """The paper's start for FCN-16s/8s: skip score layers at zero, so the finer streams join as they help."""
    for name in ("score_pool4", "score_pool3"):
        layer = getattr(model, name, None)
        if layer is not None:
            torch.nn.init.zeros_(layer.weight)
            torch.nn.init.zeros_(layer.bias)


def train(recipe: Recipe, args) -> tuple[torch.nn.Module, dict]:
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    started = time.time()
    print(f"generating {args.pool} training images...", flush=True)
    images, masks = make_pool(args.pool, 256, TRAIN_SEED)
    print(f"  done in {time.time() - started:.0f} s", flush=True)
    model = build_model(recipe.arch, in_channels=1, num_classes=2, **recipe.config)
    zero_skip_scores(model)
    device = torch.device(args.device)
    model.to(device)
    stream = batches(images, masks, recipe.batch, recipe.crop, rng, build_augmentation(1.0))

    def loss_of_a_batch():
        x, y, w = (t.to(device) for t in next(stream))
        return segmentation_loss(model(x), y, w)

    minutes = optimise(model, args.steps, recipe.lr, loss_of_a_batch)
    model.eval().cpu()
    return model, {
        "data": f"{args.pool} generated 256x256 images (segstudio.synth, seeds from {TRAIN_SEED}), 40% 8-bit",
        "steps": args.steps, "batch": recipe.batch, "crop": recipe.crop, "optimiser": "AdamW", "lr": recipe.lr,
        "schedule": "linear warm-up then cosine", "loss": "cross-entropy + soft Dice",
        "augmentation": "magnification 0.6-1.7x, flips, 90-degree turns, small rotations, gamma/scale/noise",
        f"train_minutes_{device.type}": round(minutes, 1), "torch_threads": torch.get_num_threads(),
        **({"device": torch.cuda.get_device_name(device)} if device.type == "cuda" else {}),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", choices=sorted(RECIPES))
    parser.add_argument("--quick", action="store_true", help="tiny run to check the recipe (written as <name>-quick)")
    parser.add_argument("--steps", type=int, help="training steps (default: the recipe's)")
    parser.add_argument("--pool", type=int, default=1000, help="generated training images")
    parser.add_argument("--eval-images", type=int, default=48)
    parser.add_argument("--object-images", type=int, default=40)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: all cores)")
    parser.add_argument("--device", default="cpu", help="where to train (cpu, cuda); scoring runs on the CPU")
    parser.add_argument("--out", type=Path, default=ROOT / "resources" / "models")
    parser.add_argument("--card-only", action="store_true",
                        help="only write the model card again, from the metadata of <out>/<name>.safetensors")
    args = parser.parse_args(argv)
    recipe = RECIPES[args.name]
    if args.card_only:
        target = args.out / f"{args.name}.safetensors"
        write_model_card(target.with_suffix(".md"), read_meta(target), recipe)
        print(f"wrote {target.with_suffix('.md')}")
        return 0
    args.steps = args.steps or recipe.steps
    if args.quick:
        args.steps, args.pool, args.eval_images, args.object_images = 40, 24, 4, 4
    if args.threads:
        torch.set_num_threads(args.threads)
    model, training = train(recipe, args)
    meta = ModelMeta(
        name=args.name, version=1, arch=recipe.arch, config=dict(model.config), classes=CLASSES, in_channels=1,
        normalisation=NORMALISATION, created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        parent=None, training=training, metrics={}, description=recipe.description,
        postprocess=dict(POSTPROCESS), expects={"kind": "fluorescence", "stain": "nuclear"},
    )
    print("evaluating on held-out generated images...", flush=True)
    heldout = evaluate(model, meta, args.eval_images, 384, EVAL_SEED)
    objects = object_scores(Predictor(model, meta, device="cpu"), args.object_images, 256)
    print(json.dumps({"heldout": heldout, "objects": objects}, indent=2))
    meta.metrics = {"mean_iou": heldout["model_iou"], "heldout": heldout, "objects": objects}
    target = args.out / f"{args.name}{'-quick' if args.quick else ''}.safetensors"
    save_checkpoint(target, model, meta)
    write_model_card(target.with_suffix(".md"), meta, recipe)
    size = target.stat().st_size
    print(f"wrote {target} ({size / 1e6:.1f} MB); held-out IoU {heldout['model_iou']:.3f}, "
          f"object F1 {objects['f1']:.3f}")
    return 0


def write_model_card(path: Path, meta: ModelMeta, recipe: Recipe) -> None:
    heldout, objects = meta.metrics["heldout"], meta.metrics["objects"]
    parameters = sum(p.numel() for p in build_model(meta.arch, **meta.config).parameters())
    size_mb = path.with_suffix(".safetensors").stat().st_size / 1e6
    variants = "".join(f"| {name} | {v['model_iou']:.3f} | {v['otsu_iou']:.3f} |\n"
                       for name, v in heldout["variants"].items())
    figures = {"half": heldout["variants"]["half magnification"]["model_iou"], "recall": objects["recall"]}
    notes = "".join(f"- {note.format(**figures)}\n" for note in recipe.notes)
    text = f"""# {meta.name} v{meta.version}: {recipe.title} for fluorescence nuclei

**Task.** Semantic segmentation of cell nuclei in fluorescence microscopy (DAPI/Hoechst-like nuclear
stains): classes `background` (0) and `nucleus` (1). One input channel; colour images are averaged to grey.
Input is normalised per image to its 1st-99.8th percentile, for 8-bit and 16-bit images alike. The same
task, data and held-out images as the default model `nuclei-unet`, so the three can be compared.

**Architecture.** {recipe.architecture_text}
Config `{json.dumps({k: v for k, v in meta.config.items() if k != 'pretrained_backbone'})}`;
{parameters:,} weights; file size {size_mb:.1f} MB. Trained from scratch (no ImageNet weights).

## Training data
{meta.training['data']}; no external images, none real. The generator (`segstudio.synth`) varies nucleus
size, shape, clustering, brightness, texture, illumination, haze, blur, noise and debris; see the
`nuclei-unet` card for the full list.

## Recipe
| setting | value |
| --- | --- |
""" + "".join(f"| {k} | {v} |\n" for k, v in meta.training.items()) + f"""
Training minutes are wall-clock time on the machine named; the run above shared a 2-core machine with
other work (about 3 steps a second at first, under 1 later), so on an idle 2-core CPU expect about 15 to 20
minutes, plus a few for scoring. Reproduce with `python scripts/train_bundled_models.py {meta.name}`
(deterministic data; weights depend on the torch build and thread count; `--device cuda` trains on a GPU).

## Held-out scores
{heldout['images']} generated {heldout['size']}x{heldout['size']} images with seeds disjoint from training
(the `nuclei-unet` card's set), through the app's own Predictor with the post-processing in the metadata
(holes up to {meta.postprocess['fill_holes_px']} px filled, objects under {meta.postprocess['min_object_px']}
px removed). Foreground IoU and Dice averaged over images; Otsu is a threshold after light smoothing.

| | IoU | Dice |
| --- | --- | --- |
| {meta.name} | {heldout['model_iou']:.3f} | {heldout['model_dice']:.3f} |
| Otsu threshold | {heldout['otsu_iou']:.3f} | {heldout['otsu_dice']:.3f} |

Under conditions the training data do not contain (IoU):

| condition | {meta.name} | Otsu |
| --- | --- | --- |
""" + variants + f"""
Objects (`scripts/eval_objects.py`'s matching: {objects['images']} generated {objects['size']}x{objects['size']}
images, seeds from {OBJECTS_SEED:,}; the predicted mask split by the watershed fallback; a match is IoU > 0.5):
precision {objects['precision']:.3f}, recall {objects['recall']:.3f}, F1 {objects['f1']:.3f}, count error
{100 * objects['count_error']:.1f}% over {objects['objects']:,} nuclei.

## Limits
- Trained and scored only on generated images: never on real slides in this repository. Expect to
  correct its masks; compare it with the other bundled models on your own image (Model panel, Compare).
{notes}- One class, semantic: touching nuclei come out as one region and are split afterwards (Object View).
- Not for brightfield/H&E, cytoplasm or membrane stains, 3-D stacks, or dark nuclei on a bright background.
"""
    path.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    raise SystemExit(main())
