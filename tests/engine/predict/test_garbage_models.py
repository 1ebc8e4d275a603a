"""A model whose weights pass the load check but compute NaN is refused at the first tile, naming its file,
instead of giving an empty or full mask with success."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from segstudio.engine.predict import Predictor, PredictSettings
from segstudio.engine.predict.predictor import UnusableModelOutput
from segstudio.models.checkpoint import ModelMeta, load_checkpoint, save_checkpoint
from segstudio.models.registry import build_model

CLASSES = [{"id": 0, "name": "background", "color": [0, 0, 0]}, {"id": 1, "name": "nucleus", "color": [255, 0, 0]}]


def tiny_unet():
    torch.manual_seed(0)
    return build_model("unet", in_channels=1, num_classes=2, base_channels=2, depth=2)


def negative_variance(model: nn.Module) -> nn.Module:
    """Every BatchNorm holds a negative running variance (as a damaged file may): sqrt(var + eps) is NaN.

    (Setting eps to 0 with a zero variance gave the same NaNs until torch 2.11 started refusing eps = 0.)
    """
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_var.fill_(-1.0)
    return model


def test_a_model_with_a_negative_variance_is_refused(rng):
    model = negative_variance(tiny_unet()).eval()
    predictor = Predictor(model, ModelMeta(name="broken", version=1, arch="unet", classes=CLASSES), device="cpu")
    with pytest.raises(UnusableModelOutput, match="not a number"):
        predictor.predict(rng.random((40, 40, 1), dtype=np.float32), PredictSettings(tile=32, overlap=0.25))
    with pytest.raises(UnusableModelOutput):
        next(predictor.iter_probabilities(rng.random((40, 40, 1), dtype=np.float32), PredictSettings(tile=32)))


def overflowing_file(tmp_path):
    """Weights that are finite numbers (so the load check passes) but overflow to inf in the first layer."""
    model = tiny_unet()
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.ndim == 4:
                parameter.fill_(3e38)
    path = tmp_path / "overflowing.safetensors"
    save_checkpoint(path, model, ModelMeta(name="overflowing", version=1, arch="unet", config=dict(model.config),
                                           classes=CLASSES, in_channels=1))
    return path


def test_a_model_file_whose_finite_weights_overflow_is_refused_with_its_name(tmp_path, rng):
    path = overflowing_file(tmp_path)
    model, meta = load_checkpoint(path)  # the weights themselves are finite numbers
    with pytest.raises(UnusableModelOutput) as caught:
        Predictor(model, meta, device="cpu").predict(rng.random((40, 40, 1), dtype=np.float32) * 1000)
    assert str(path) in str(caught.value)


def test_predict_on_the_command_line_stops_with_the_files_name(tmp_path, rng, capsys):
    import tifffile

    from segstudio.cli import main

    path = overflowing_file(tmp_path)
    images = []
    for i in range(2):
        images.append(tmp_path / f"slide{i}.tif")
        tifffile.imwrite(images[-1], (rng.random((40, 40)) * 4000).astype(np.uint16))
    code = main(["predict", *map(str, images), "--model", str(path), "--out", str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and str(path) in err and "not a number" in err
    assert not list((tmp_path / "out").glob("*_mask.png"))
