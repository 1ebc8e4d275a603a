"""Train the bundled default model: a U-Net for fluorescence nuclei, from procedurally generated slides.

    python scripts/train_default_model.py            # 10-45 minutes on a 2-core CPU, depending on load
    python scripts/train_default_model.py --quick    # a few minutes, for checking the recipe

No external data is used: every training and evaluation image comes from segstudio.synth, with
disjoint seeds for training and the held-out evaluation set. The script writes
resources/models/nuclei-unet.safetensors and its model card resources/models/nuclei-unet.md, with the
held-out scores of the model and of an Otsu-threshold baseline on the same images.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np
import torch
from torchvision import tv_tensors

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from segstudio import synth  # noqa: E402
from segstudio.core.labels import NUCLEUS_COLOR  # noqa: E402
from segstudio.engine.predict import Predictor, PredictSettings, prepare_input  # noqa: E402
from segstudio.engine.training.augment import build_augmentation  # noqa: E402
from segstudio.engine.training.objective import segmentation_loss  # noqa: E402
from segstudio.models.checkpoint import ModelMeta, save_checkpoint  # noqa: E402
from segstudio.models.registry import build_model  # noqa: E402

NORMALISATION = {"kind": "percentile", "low": 1.0, "high": 99.8}
# Pinholes where nucleoli are dark and specks on debris: removed the way a person would (core.postprocess).
POSTPROCESS = {"fill_holes_px": 256, "min_object_px": 8}
CLASSES = [
    {"id": 0, "name": "background", "color": [0, 0, 0]},
    {"id": 1, "name": "nucleus", "color": list(NUCLEUS_COLOR)},  # the session default too (core.labels)
]
TRAIN_SEED = 1_000
EVAL_SEED = 9_000_000  # far from any training seed


def make_pool(n: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n normalised training images with masks; half 8-bit, half 16-bit, every scene drawn afresh."""
    rng = np.random.default_rng(seed)
    images = np.empty((n, size, size), np.float32)
    masks = np.empty((n, size, size), np.uint8)
    for i in range(n):
        bit_depth = 8 if rng.random() < 0.4 else 16
        image, mask, _ = synth.generate_nuclei_image(
            int(rng.integers(2**31)), height=size, width=size, bit_depth=bit_depth
        )
        images[i] = prepare_input(image[..., None], 1, NORMALISATION)[0]
        masks[i] = mask
    return images, masks


def batches(images: np.ndarray, masks: np.ndarray, batch: int, crop: int, rng: np.random.Generator, augment):
    n, h, w = images.shape
    while True:
        xs, ys, ws = [], [], []
        for _ in range(batch):
            i = int(rng.integers(n))
            # Magnification jitter: a window of crop/scale pixels resized to crop, so nuclei appear
            # 0.6x to 1.7x their generated size (the generator already spans radius 4-30 px).
            scale = float(np.exp(rng.uniform(np.log(0.6), np.log(1.7))))
            window = min(h, w, max(16, int(round(crop / scale))))
            y0, x0 = int(rng.integers(h - window + 1)), int(rng.integers(w - window + 1))
            src = images[i, y0 : y0 + window, x0 : x0 + window]
            lab = masks[i, y0 : y0 + window, x0 : x0 + window]
            if window != crop:
                interp = cv2.INTER_AREA if window > crop else cv2.INTER_LINEAR
                src = cv2.resize(src, (crop, crop), interpolation=interp)
                lab = cv2.resize(lab, (crop, crop), interpolation=cv2.INTER_NEAREST)
            image = tv_tensors.Image(torch.from_numpy(np.ascontiguousarray(src)[None].copy()))
            targets = np.stack([lab, np.zeros((crop, crop), np.uint8), np.ones((crop, crop), np.uint8)])
            image, target = augment(image, tv_tensors.Mask(torch.from_numpy(targets)))
            xs.append(image.as_subclass(torch.Tensor))
            ys.append(target[0].long())
            ws.append(target[2].float())
        yield torch.stack(xs), torch.stack(ys), torch.stack(ws)


# Held-out conditions beyond the training distribution: other magnifications and an over-exposed camera.
VARIANTS = ("as generated", "half magnification", "double magnification", "saturated")


def _variant(image: np.ndarray, mask: np.ndarray, variant: str) -> tuple[np.ndarray, np.ndarray]:
    h, w = mask.shape
    if variant in ("half magnification", "double magnification"):
        f = 0.5 if variant.startswith("half") else 2.0
        size = (int(w * f), int(h * f))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA if f < 1 else cv2.INTER_LINEAR)
        mask = cv2.resize(mask, size, interpolation=cv2.INTER_NEAREST)
    elif variant == "saturated":  # the brightest 5% of pixels clip, as with too long an exposure
        image = np.minimum(image, np.percentile(image, 95)).astype(image.dtype)
    return image, mask


def evaluate(model, meta: ModelMeta, n: int, size: int, seed: int) -> dict:
    """Foreground IoU/Dice of the model (through the app's own Predictor) and of Otsu on the same images."""
    model.eval()
    predictor = Predictor(model, meta, device="cpu")
    settings = PredictSettings(tile=512, overlap=0.25, batch=2, device="cpu")
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        bit_depth = 8 if rng.random() < 0.4 else 16
        generated = synth.generate_nuclei_image(int(rng.integers(2**31)), height=size, width=size, bit_depth=bit_depth)
        for variant in VARIANTS:
            image, mask = _variant(generated[0], generated[1], variant)
            pred = predictor.predict(image[..., None], settings).labels == 1
            otsu = synth.otsu_baseline(image)
            rows.append({
                "variant": variant, "bit_depth": bit_depth,
                "model_iou": synth.iou(pred, mask), "model_dice": synth.dice(pred, mask),
                "otsu_iou": synth.iou(otsu, mask), "otsu_dice": synth.dice(otsu, mask),
            })
    plain = [r for r in rows if r["variant"] == VARIANTS[0]]
    summary = {k: float(np.mean([r[k] for r in plain])) for k in ("model_iou", "model_dice", "otsu_iou", "otsu_dice")}
    for depth in (8, 16):
        sub = [r for r in plain if r["bit_depth"] == depth]
        if sub:
            summary[f"model_iou_{depth}bit"] = float(np.mean([r["model_iou"] for r in sub]))
            summary[f"otsu_iou_{depth}bit"] = float(np.mean([r["otsu_iou"] for r in sub]))
    summary["variants"] = {
        v: {k: float(np.mean([r[k] for r in rows if r["variant"] == v])) for k in ("model_iou", "otsu_iou")}
        for v in VARIANTS[1:]
    }
    summary["images"] = n
    summary["size"] = size
    return summary


def optimise(model, steps: int, lr: float, loss_of_a_batch) -> float:
    """The bundled models' recipe: AdamW, a warm-up over the first 1/30 of the steps, then cosine decay.

    loss_of_a_batch() draws the next batch and returns its loss. Prints a smoothed loss every 50 steps and
    returns the minutes the training took.
    """
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    warmup = max(1, steps // 30)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / steps))))
    model.train()
    t0, running = time.time(), None
    for step in range(1, steps + 1):
        loss = loss_of_a_batch()
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        schedule.step()
        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        if step % 50 == 0 or step == steps:
            rate = step / (time.time() - t0)
            print(f"step {step}/{steps} loss {running:.4f} ({rate:.2f} steps/s, "
                  f"{(steps - step) / rate / 60:.1f} min left)", flush=True)
    return (time.time() - t0) / 60


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny run to check the recipe")
    parser.add_argument("--steps", type=int, default=2200)
    parser.add_argument("--batch", type=int, default=6)
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--pool", type=int, default=1000, help="generated training images")
    parser.add_argument("--base", type=int, default=16, help="U-Net base width")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--eval-images", type=int, default=48)
    parser.add_argument("--out", type=Path, default=ROOT / "resources" / "models")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: all cores)")
    parser.add_argument("--evaluate-only", type=Path, metavar="CHECKPOINT",
                        help="score an existing checkpoint again and rewrite it and its model card into --out")
    args = parser.parse_args(argv)
    if args.evaluate_only:
        return evaluate_existing(args)
    if args.quick:
        args.steps, args.pool, args.eval_images = 60, 48, 8
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)

    started = time.time()
    print(f"generating {args.pool} training images...", flush=True)
    images, masks = make_pool(args.pool, 256, TRAIN_SEED)
    print(f"  done in {time.time() - started:.0f} s; nucleus fraction {masks.mean():.3f}", flush=True)

    model = build_model("unet", in_channels=1, num_classes=2, base_channels=args.base, depth=4)
    stream = batches(images, masks, args.batch, args.crop, rng, build_augmentation(1.0))

    def loss_of_a_batch():
        x, y, w = next(stream)
        return segmentation_loss(model(x), y, w)

    train_minutes = optimise(model, args.steps, args.lr, loss_of_a_batch)

    recipe = {
        "data": f"{args.pool} generated 256x256 images (segstudio.synth, seeds from {TRAIN_SEED}), 40% 8-bit",
        "steps": args.steps, "batch": args.batch, "crop": args.crop, "optimiser": "AdamW", "lr": args.lr,
        "schedule": "linear warm-up then cosine", "loss": "cross-entropy + soft Dice",
        "augmentation": "magnification 0.6-1.7x, flips, 90-degree turns, small rotations, gamma/scale/noise",
        "train_minutes_cpu": round(train_minutes, 1), "torch_threads": torch.get_num_threads(),
    }
    meta = ModelMeta(
        name="nuclei-unet", version=1, arch="unet", config=dict(model.config), classes=CLASSES, in_channels=1,
        normalisation=NORMALISATION, created=datetime.now(timezone.utc).isoformat(timespec="seconds"), parent=None,
        training=recipe, metrics={},
        description="U-Net for fluorescence nuclei (DAPI/Hoechst-like stains), trained on generated slides.",
        postprocess=dict(POSTPROCESS), expects={"kind": "fluorescence", "stain": "nuclear"},
    )
    print("evaluating on held-out generated images...", flush=True)
    scores = evaluate(model, meta, args.eval_images, 384, EVAL_SEED)
    print(json.dumps(scores, indent=2))
    meta.metrics = {"mean_iou": scores["model_iou"], "heldout": scores}
    if not args.quick:
        args.out.mkdir(parents=True, exist_ok=True)
    target = args.out / ("nuclei-unet.safetensors" if not args.quick else "nuclei-unet-quick.safetensors")
    model.eval()
    save_checkpoint(target, model, meta)
    write_model_card(target.with_suffix(".md"), meta, scores, recipe)
    print(f"wrote {target} ({target.stat().st_size / 1e6:.1f} MB)")
    return 0


def evaluate_existing(args) -> int:
    from segstudio.models.checkpoint import load_checkpoint

    model, meta = load_checkpoint(args.evaluate_only)
    meta.postprocess = dict(POSTPROCESS)
    scores = evaluate(model, meta, args.eval_images, 384, EVAL_SEED)
    print(json.dumps(scores, indent=2))
    meta.metrics = {**(meta.metrics or {}), "mean_iou": scores["model_iou"], "heldout": scores}  # object scores kept
    target = args.out / "nuclei-unet.safetensors"
    save_checkpoint(target, model, meta)
    write_model_card(target.with_suffix(".md"), meta, scores, meta.training)
    print(f"wrote {target}")
    return 0


def write_model_card(path: Path, meta: ModelMeta, scores: dict, recipe: dict) -> None:
    fill_holes_px = meta.postprocess.get("fill_holes_px", 0)
    min_object_px = meta.postprocess.get("min_object_px", 0)
    variant_rows = "".join(
        f"| {name} | {v['model_iou']:.3f} | {v['otsu_iou']:.3f} |\n" for name, v in scores.get("variants", {}).items()
    )
    by_depth = {
        key: scores.get(key, float("nan"))
        for key in ("model_iou_8bit", "otsu_iou_8bit", "model_iou_16bit", "otsu_iou_16bit")
    }
    border = (meta.objects or {}).get("boundary_channel")
    outputs = ("classes `background` (0) and `nucleus` (1)" if border is None else
               f"classes `background` (0) and `nucleus` (1), and a third output (channel {border}): the border "
               "between touching nuclei, a map from 0 to 1 that is not a class and along which objects are split")
    text = f"""# nuclei-unet v{meta.version}: the default segstudio model

**Task.** Segmentation of cell nuclei in fluorescence microscopy (DAPI/Hoechst-like nuclear
stains): {outputs}. One input channel; colour images are averaged to grey.
Input is normalised per image to its 1st-99.8th percentile, for 8-bit and 16-bit images alike.

**Architecture.** U-Net, depth 4, base width {meta.config.get('base_channels')} channels
(`{json.dumps({k: v for k, v in meta.config.items() if k not in ('pretrained_backbone',)})}`).

## Training data
{recipe['data']}; no external images. The generator varies
nucleus size (radius about 4 to 30 px, i.e. magnification), shape (ellipses with smooth boundary noise,
irregular and mitotic nuclei), clustering and touching neighbours, brightness spread over about 1.5
decades within an image (dim and bright nuclei together), chromatin texture and nucleoli, uneven
illumination and autofluorescence, out-of-focus haze from nuclei outside the focal plane, blur and
defocus, Poisson shot noise and camera read noise, and debris. The mask edge is placed where a person
would draw it (half-maximum of the nucleus edge before blur).

## Recipe
| setting | value |
| --- | --- |
""" + "".join(f"| {k} | {v} |\n" for k, v in recipe.items()) + f"""
Reproduce with {_reproduce(border)} (deterministic data; weights depend on the torch build).

## Post-processing
Predicted masks are cleaned as stored in the model's metadata: enclosed holes up to
{fill_holes_px} px are filled and objects under {min_object_px} px removed
(`segstudio.core.postprocess`). The scores below include it, since they go through the app's own Predictor.

## Held-out scores
{scores['images']} generated {scores['size']}x{scores['size']} images with seeds disjoint from training,
drawn from the same distribution. Foreground IoU and Dice averaged over images; the baseline is an
Otsu threshold after light smoothing (`segstudio.synth.otsu_baseline`) on the same images.

| | IoU | Dice |
| --- | --- | --- |
| nuclei-unet | {scores['model_iou']:.3f} | {scores['model_dice']:.3f} |
| Otsu threshold | {scores['otsu_iou']:.3f} | {scores['otsu_dice']:.3f} |

The same held-out images under conditions the training data do not contain (IoU):

| condition | nuclei-unet | Otsu |
| --- | --- | --- |
""" + variant_rows + f"""
By bit depth (IoU): 8-bit images: model {by_depth['model_iou_8bit']:.3f}, Otsu {by_depth['otsu_iou_8bit']:.3f};
16-bit images: model {by_depth['model_iou_16bit']:.3f}, Otsu {by_depth['otsu_iou_16bit']:.3f}.

""" + _objects_section(meta) + f"""
## Limits
- Trained only on generated images: it has not been scored on real slides in this repository. Expect
  to correct its masks and fine-tune it on your own exported data (Model > Fine-tune).
- {_instance_limit(border)}
- Not trained for brightfield/H&E, cytoplasm or membrane stains, 3-D stacks (each page is 2-D), or
  images where nuclei are dark on a bright background.
"""
    path.write_text(text, encoding="utf-8")


def _reproduce(border) -> str:
    if border is None:
        return "`python scripts/train_default_model.py`"
    return ("`python scripts/train_default_model.py`, then `python scripts/train_boundary_model.py` (which starts\n"
            "from that model and adds the border output), then `--evaluate-only` for these scores")


def _instance_limit(border) -> str:
    if border is None:
        return ("Semantic, not instance, segmentation: the network has no boundary output, so touching\n"
                "  nuclei come out as one `nucleus` region and objects are split afterwards by the distance-transform\n"
                "  watershed (View > Object View, `predict --objects`); `scripts/eval_objects.py` scores that split.")
    return ("Touching nuclei are split along the border output, seeded from the nucleus area away from\n"
            "  borders (View > Object View, `predict --objects`, Export Objects). Where the border output is\n"
            "  faint, a touching pair can still come out as one object: use the Split tool. Fine-tuning teaches\n"
            "  the border from the object maps in your dataset's objects/ folder (objects found or edited in\n"
            "  Object View); images whose objects are only the mask's patches teach the classes only.")


def _objects_section(meta: ModelMeta) -> str:
    """The object-level scores stored in the metadata by scripts/train_boundary_model.py, as a table."""
    found = (meta.metrics or {}).get("objects_heldout")
    if not found:
        return ""
    rows = "".join(f"| {name} | {s['precision']:.3f} | {s['recall']:.3f} | {s['f1']:.3f} | "
                   f"{100 * s['count_error']:.1f}% |\n" for name, s in found.items())
    first = next(iter(found.values()))
    return f"""
## Objects (instances)
Held-out generated 256x256 images of `scripts/eval_objects.py` (seeds from 9,500,000, disjoint from
training), {int(first.get('objects', 0)):,} nuclei. A found object matches a true nucleus when their IoU exceeds
0.5; the count error is the mean of |found - true| / true per image. Reproduce with
`python scripts/train_boundary_model.py --score-only resources/models/nuclei-unet.safetensors --reference
FILE`, FILE being the model `scripts/train_default_model.py --out DIR` writes (no border output).

| objects from | precision | recall | F1 | count error |
| --- | --- | --- | --- | --- |
""" + rows


if __name__ == "__main__":
    raise SystemExit(main())
