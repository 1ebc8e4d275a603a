"""Fine-tuning a model with a boundary output: its classes learn from the masks, its border output stays a
border map (not trained down as if it were a class nobody paints), and the new version keeps declaring it."""
from __future__ import annotations

import numpy as np
import torch

from segstudio.engine.training.loop import fine_tune
from tests.engine.training.test_loop import CLASSES, TINY_UNET, quick_config, write_dataset


def save_boundary_base() -> str:
    from segstudio.core.paths import user_models_dir
    from segstudio.models.checkpoint import ModelMeta, save_checkpoint
    from segstudio.models.library import ModelLibrary
    from segstudio.models.registry import build_model

    torch.manual_seed(0)
    model = build_model("unet", in_channels=1, num_classes=3, **TINY_UNET)
    meta = ModelMeta(name="borders", version=1, arch="unet", config=dict(model.config), classes=CLASSES,
                     in_channels=1, normalisation={"kind": "percentile", "low": 1.0, "high": 99.8},
                     objects={"boundary_channel": 2})
    save_checkpoint(user_models_dir() / "borders" / "v1.safetensors", model, meta)
    ModelLibrary().set_active(meta.id)
    return meta.id


def test_the_new_version_keeps_its_border_output_and_two_classes(tmp_path):
    from segstudio.engine.predict import Predictor, PredictSettings
    from segstudio.models.library import ModelLibrary

    base = save_boundary_base()
    parent, _ = ModelLibrary().load(base)
    data = write_dataset(tmp_path / "blobs")
    result = fine_tune(quick_config(base, data, steps=40))
    assert result.status == "done", result
    child, meta = ModelLibrary().load(result.version)
    assert meta.objects == {"boundary_channel": 2}
    assert [c["name"] for c in meta.classes] == ["background", "nucleus"]  # no "class 2" for the border output
    # The border output had no loss: its row of the last layer moved by weight decay alone, nothing learnt.
    before, after = parent.head.weight[2], child.head.weight[2]
    assert torch.allclose(after, before, rtol=0.05, atol=1e-3)
    assert not torch.allclose(child.head.weight[1], parent.head.weight[1], rtol=0.05, atol=1e-3)
    image = (np.random.default_rng(0).random((48, 48)) * 4000).astype(np.uint16)
    found = Predictor(child, meta, device="cpu").predict(image, PredictSettings(tile=48))
    assert set(np.unique(found.labels)) <= {0, 1} and found.boundary is not None
