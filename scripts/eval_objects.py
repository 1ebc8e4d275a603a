"""How well objects come apart: object-level precision, recall and F1 at IoU 0.5, and the count error, on
generated held-out slides whose every nucleus is known (segstudio.synth).

Three ways of getting objects are scored on the same images:

* ``connected``: one object per connected patch of the true mask (no splitting: the floor);
* ``watershed on true mask``: the distance-transform watershed fallback on the true class mask, which
  isolates how well touching nuclei are split from how well the mask is drawn;
* ``model + watershed``: a model's predicted mask (``--model``, the bundled nuclei-unet by default; through
  the app's own Predictor), then the
  split a user gets from Predict and Object View: along the model's border map when its metadata declares
  a boundary output, else the distance-transform fallback.

Run:  .venv/bin/python scripts/eval_objects.py [--images 40] [--size 256] [--no-model] [--model FILE_OR_ID]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from segstudio import synth  # noqa: E402
from segstudio.core.objects.instances import connected_objects, find_instances, split_touching  # noqa: E402

EVAL_SEED = 9_500_000  # disjoint from the training seeds of scripts/train_default_model.py
IOU_MATCH = 0.5


def match_counts(truth: np.ndarray, found: np.ndarray) -> tuple[int, int, int]:
    """(true positives, objects found, true objects): pairs with IoU > 0.5 match (such a pair is unique)."""
    n_true, n_found = int(truth.max()), int(found.max())
    both = (truth > 0) | (found > 0)
    pairs = truth[both].astype(np.int64) * (n_found + 1) + found[both]
    values, inter = np.unique(pairs, return_counts=True)
    t, f = values // (n_found + 1), values % (n_found + 1)
    area_t = np.bincount(truth.ravel(), minlength=n_true + 1)
    area_f = np.bincount(found.ravel(), minlength=n_found + 1)
    keep = (t > 0) & (f > 0)
    iou = inter[keep] / (area_t[t[keep]] + area_f[f[keep]] - inter[keep])
    return int(np.count_nonzero(iou > IOU_MATCH)), len(np.unique(found)) - (0 in found), n_true


def scores(rows: list[tuple[int, int, int]]) -> dict:
    tp, found, true = (np.array(v, float) for v in zip(*rows))
    precision, recall = tp.sum() / max(found.sum(), 1), tp.sum() / max(true.sum(), 1)
    return {"precision": precision, "recall": recall,
            "f1": 2 * precision * recall / max(precision + recall, 1e-9),
            "count_error": float(np.mean(np.abs(found - true) / np.maximum(true, 1))),
            "objects": int(true.sum())}


def _predictor(model_ref: str = "nuclei-unet"):
    """The model's objects for an image: its mask, split as the app splits it (find_instances)."""
    from segstudio.engine.predict import Predictor, PredictSettings
    from segstudio.models.library import ModelLibrary

    model, meta = ModelLibrary().load(model_ref, device="cpu")
    predictor = Predictor(model, meta, device="cpu")

    def objects(image):
        result = predictor.predict(image[..., None], PredictSettings(tile=512, device="cpu"))
        return find_instances(result.labels, result.boundary)

    return objects


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--no-model", action="store_true", help="skip the bundled model (no torch needed)")
    parser.add_argument("--model", default="nuclei-unet", help="a model file or library id instead of the "
                                                               "bundled model")
    args = parser.parse_args()
    predict = None if args.no_model else _predictor(args.model)
    rows: dict[str, list] = {"connected": [], "watershed on true mask": [], "model + watershed": []}
    rng = np.random.default_rng(EVAL_SEED)
    started = time.perf_counter()
    for _ in range(args.images):
        image, mask, truth = synth.generate_nuclei_image(int(rng.integers(2**31)), height=args.size,
                                                         width=args.size, bit_depth=16)
        rows["connected"].append(match_counts(truth, connected_objects(mask)))
        rows["watershed on true mask"].append(match_counts(truth, split_touching(mask)))
        if predict is not None:
            rows["model + watershed"].append(match_counts(truth, predict(image)))
    print(f"{args.images} held-out generated {args.size}x{args.size} images, seeds from {EVAL_SEED}; "
          f"{time.perf_counter() - started:.0f} s\n")
    print("| objects from | precision | recall | F1 | count error |")
    print("| --- | --- | --- | --- | --- |")
    for name, found in rows.items():
        if found:
            s = scores(found)
            print(f"| {name} | {s['precision']:.3f} | {s['recall']:.3f} | {s['f1']:.3f} | "
                  f"{100 * s['count_error']:.1f}% |")
    print(f"\n{scores(rows['connected'])['objects']} true nuclei; IoU > {IOU_MATCH} is a match; count error is "
          "the mean of |found - true| / true per image.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
