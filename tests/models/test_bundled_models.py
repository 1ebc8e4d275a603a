"""The models that ship in resources/models: each loads, finds generated nuclei it never saw, stays small and
has a model card whose held-out figure is the one in its metadata."""
from __future__ import annotations

import numpy as np
import pytest

from segstudio.core import paths
from segstudio.models.library import ModelLibrary

BUNDLED = ("nuclei-unet", "nuclei-fcn8s", "nuclei-deeplabv3plus")
# Well under every card's held-out IoU (0.80 to 0.92): one small image scatters more than 48 large ones.
IOU_FLOOR = 0.6


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_model_finds_generated_nuclei(name, single_torch_thread):
    from segstudio import synth
    from segstudio.engine.predict import Predictor, PredictSettings

    model, meta = ModelLibrary().load(name)
    assert meta.metrics["mean_iou"] > IOU_FLOOR + 0.1  # the card's figure is well above the floor
    predictor = Predictor(model, meta, device="cpu")
    scores = []
    for seed in (9_000_101, 9_000_202):  # beside the held-out seeds, far from the training ones
        image, mask, _ = synth.generate_nuclei_image(seed, height=160, width=160, bit_depth=16)
        labels = predictor.predict(image[..., None], PredictSettings(tile=160, device="cpu")).labels
        scores.append(synth.iou(labels == 1, mask > 0))
    assert np.mean(scores) > IOU_FLOOR, scores


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
