"""Growing the classes of a model with a border output: the border stays the last output and keeps its weights."""
from __future__ import annotations

import torch

from segstudio.core.paths import user_models_dir
from segstudio.engine.new_model import extend_classes
from segstudio.models.checkpoint import ModelMeta, save_checkpoint
from segstudio.models.library import ModelLibrary
from segstudio.models.registry import build_model
from tests.engine.training.test_loop import CLASSES, TINY_UNET


def _border_model() -> tuple[str, torch.nn.Module]:
    torch.manual_seed(3)
    model = build_model("unet", in_channels=1, num_classes=3, **TINY_UNET)
    meta = ModelMeta(name="borders", version=1, arch="unet", config=dict(model.config), classes=CLASSES,
                     in_channels=1, normalisation={"kind": "percentile", "low": 1.0, "high": 99.8},
                     objects={"boundary_channel": 2})
    save_checkpoint(user_models_dir() / "borders" / "v1.safetensors", model, meta)
    return meta.id, model


def test_a_new_class_goes_before_the_border_output_which_keeps_what_it_learnt():
    base, source = _border_model()
    result = extend_classes(base, [{"id": 2, "name": "mitosis", "color": [255, 0, 0]}])
    model, meta = ModelLibrary().load(result.meta.id)
    assert meta.objects["boundary_channel"] == 3 and meta.num_classes == 4
    assert [c["name"] for c in meta.classes] == ["background", "nucleus", "mitosis"]
    old, new = source.head.weight.detach(), model.head.weight.detach()
    torch.testing.assert_close(new[3], old[2])  # the border row moved up past the new class
    torch.testing.assert_close(new[:2], old[:2])  # the classes it had are kept
    assert not torch.equal(new[2], old[2])  # the new class does not start as the border map
    assert ModelLibrary().find(base).meta.objects["boundary_channel"] == 2  # the base version is untouched


def test_fine_tune_offers_a_new_class_before_the_run_when_the_model_has_a_border_output(tmp_path, capsys):
    """Class id 2 in a mask is a class the model lacks, not its border output (the model's third output)."""
    from segstudio.cli import main
    from tests.gui.training.test_growing_classes import write_three_class_dataset

    base, _ = _border_model()
    data = write_three_class_dataset(tmp_path / "cells")
    args = ["train", "--model", base, "--data", str(data), "--batch", "2", "--crop", "32", "--device", "cpu",
            "--workers", "0", "--steps", "2", "--progress", "none"]
    assert main(args) == 1
    assert "--extend-classes" in capsys.readouterr().err  # refused up front, saying how to go on
    assert main([*args, "--extend-classes"]) == 0
    trained = ModelLibrary().find("borders/v3").meta
    assert trained.parent == "borders/v2" and trained.class_count == 3
    assert trained.objects["boundary_channel"] == 3
