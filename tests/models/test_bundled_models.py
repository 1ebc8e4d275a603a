"""The models that ship in resources/models: each loads, finds generated nuclei it never saw, stays small and
has a model card whose held-out figure is the one in its metadata."""
from __future__ import annotations

import numpy as np
import pytest

from segstudio.core import paths
from segstudio.models.library import ModelLibrary

BUNDLED = ("nuclei-unet", "nuclei-fcn8s", "nuclei-deeplabv3plus")
# Well under every card's held-out IoU (0.81 to 0.92): two small images scatter more than 48 large ones
# (the FCN-8s scores 0.70 and 0.60 on these two; Otsu about 0.5 on average).
IOU_FLOOR = 0.5
SEEDS = (9_000_101, 9_000_202)  # beside the held-out seeds, far from the training ones


def _scores(predictor, synth, PredictSettings) -> list[float]:
    scores = []
    for seed in SEEDS:
        image, mask, _ = synth.generate_nuclei_image(seed, height=192, width=192, bit_depth=16)
        labels = predictor.predict(image[..., None], PredictSettings(tile=192, device="cpu")).labels
        scores.append(synth.iou(labels == 1, mask > 0))
    return scores


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_model_finds_generated_nuclei(name, single_torch_thread):
    from segstudio import synth
    from segstudio.engine.predict import Predictor, PredictSettings

    model, meta = ModelLibrary().load(name)
    assert meta.metrics["mean_iou"] > IOU_FLOOR + 0.3  # the card's figure is well above the floor
    scores = _scores(Predictor(model, meta, device="cpu"), synth, PredictSettings)
    assert np.mean(scores) > IOU_FLOOR, scores


def test_the_bundled_fcn8s_answers_through_its_finer_streams(single_torch_thread):
    """The fused 1/16 and 1/8 streams carry real evidence: without the pool3 scores the answer is gone."""
    import torch

    from segstudio import synth
    from segstudio.engine.predict import Predictor, PredictSettings

    model, meta = ModelLibrary().load("nuclei-fcn8s")
    full = np.mean(_scores(Predictor(model, meta, device="cpu"), synth, PredictSettings))
    with torch.no_grad():
        model.score_pool3.weight.zero_()
        model.score_pool3.bias.zero_()
    without_pool3 = np.mean(_scores(Predictor(model, meta, device="cpu"), synth, PredictSettings))
    assert full > IOU_FLOOR and without_pool3 < full - 0.3, (full, without_pool3)
    assert model.score_pool4.weight.abs().mean() > 0.1 * model.score_fr.weight.abs().mean()  # 16s learnt too


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_model_is_small_listed_and_has_its_card(name):
    path = paths.bundled_models_dir() / f"{name}.safetensors"
    assert path.stat().st_size < 10_000_000
    entry = ModelLibrary().find(name)
    assert entry.bundled and entry.path == path and entry.meta.classes[1]["name"] == "nucleus"
    card = path.with_suffix(".md").read_text(encoding="utf-8")
    assert f"| {name} | {entry.meta.metrics['mean_iou']:.3f} |" in card


def test_nuclei_unet_stays_the_default_beside_the_others():
    library = ModelLibrary()
    assert {e.meta.name for e in library.entries() if e.bundled} >= set(BUNDLED)
    assert library.active_id() == "nuclei-unet/v1"


def test_models_list_names_every_bundled_model(capsys):
    import json

    from segstudio.cli import main

    assert main(["models", "list", "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    for name in BUNDLED:
        assert rows[name]["bundled"] and rows[name]["metrics"]["mean_iou"] > IOU_FLOOR
    assert rows["nuclei-unet"]["active"] and not rows["nuclei-fcn8s"]["active"]
