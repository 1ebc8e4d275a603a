"""Why the network drew a pixel: the score with and without each skip, and gradient x activation per tap."""
import math

import numpy as np
import pytest
import torch
import torch.nn as nn

from segstudio.engine.inspect import TapInspector
from segstudio.engine.inspect_why import explain_input, explain_pixel, pushes_by_level, run_request
from segstudio.models.registry import build_model
from segstudio.models.taps import TapSpec
from tests.engine.test_inspect import _Meta
from tests.models.conftest import TINY_CONFIGS

pytestmark = pytest.mark.usefixtures("single_torch_thread")


class KnownSkipNet(nn.Module):
    """Class 1's score = the blurred coarse path + `skip_weight` x the skip (the input itself); class 0 = 0.

    So the skip's effect at a pixel is exactly skip_weight x the input value there.
    """

    def __init__(self, skip_weight: float):
        super().__init__()
        self.enc = nn.Identity()
        self.pool = nn.AvgPool2d(2)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.skip = nn.Identity()
        self.output = nn.Identity()
        self.skip_weight = skip_weight
        self.stride = 2

    def forward(self, x):
        features = self.enc(x)
        coarse = self.up(self.pool(features))
        score = coarse + self.skip_weight * self.skip(features)
        return self.output(torch.cat([torch.zeros_like(score), score], dim=1))

    def tap_specs(self):
        return [TapSpec("enc", "encoder", "enc", "input", level=0),
                TapSpec("pool", "context", "pool", "coarse", level=1),
                TapSpec("up", "decoder", "up", "coarse upsampled", level=0),
                TapSpec("skip (from enc)", "skip", "skip", "fine detail", level=0, pairs_with="up"),
                TapSpec("logits", "logits", "output", "scores", level=0)]


@pytest.mark.parametrize("weight", [2.0, -3.0])
def test_a_skips_known_contribution_has_the_right_sign_and_size(weight):
    x = torch.rand(1, 1, 8, 8) + 0.5  # positive everywhere
    result = explain_input(KnownSkipNet(weight), x, 3, 5, class_index=1, class_names=["background", "nucleus"])
    (skip,) = result.skips
    assert skip.delta == pytest.approx(weight * float(x[0, 0, 3, 5]), rel=1e-5)
    assert math.copysign(1, skip.delta) == math.copysign(1, weight)
    assert all(math.isfinite(p.push) for p in result.pushes)
    # gradient x activation on the logits of a linear network is the score itself
    assert next(p.push for p in result.pushes if p.kind == "logits") == pytest.approx(result.score, rel=1e-5)
    word = "raised" if weight > 0 else "lowered"
    assert any(f"skip (full size) {word} the nucleus score" in s for s in result.sentences)


def test_the_predicted_class_is_explained_when_none_is_chosen():
    x = torch.rand(1, 1, 8, 8) + 0.5
    result = explain_input(KnownSkipNet(2.0), x, 1, 1)
    assert result.class_index == 1  # class 1's score is positive, class 0's is zero
    assert result.sentences[0].startswith("This pixel is drawn as class 1")


@pytest.mark.parametrize("arch", list(TINY_CONFIGS))
def test_every_architecture_explains_a_pixel_with_finite_numbers(arch):
    torch.manual_seed(0)
    model = build_model(arch, in_channels=1, num_classes=2, **TINY_CONFIGS[arch]).eval()
    pixels = np.random.default_rng(0).random((40, 48)).astype(np.float32)
    inspector = TapInspector(model, _Meta(), device="cpu")
    result = run_request(inspector, pixels, {"explain": (30, 11)})
    assert (result.x, result.y) == (30, 11) and result.class_name in ("background", "nucleus")
    assert len(result.pushes) == len(model.tap_specs())
    assert all(math.isfinite(p.push) for p in result.pushes)
    assert len(result.skips) == sum(s.kind == "skip" for s in model.tap_specs())
    assert all(math.isfinite(s.with_skip) and math.isfinite(s.without_skip) for s in result.skips)
    assert set(pushes_by_level(result)) <= set(range(6))
    assert not model.training and all(p.grad is None for p in model.parameters())


def test_the_score_explained_is_the_score_the_inspection_shows():
    torch.manual_seed(1)
    model = build_model("unet", in_channels=1, num_classes=2, **TINY_CONFIGS["unet"]).eval()
    pixels = np.random.default_rng(1).random((32, 32)).astype(np.float32)
    inspector = TapInspector(model, _Meta(), device="cpu")
    result = explain_pixel(inspector, pixels, 9, 20, side=32)
    inspection = run_request(inspector, pixels, {"view": (0, 0, 32, 32)})
    probabilities = inspection.probabilities[:, 20, 9]
    assert result.probability == pytest.approx(float(probabilities[result.class_index]), abs=1e-4)
    assert result.class_index == int(np.argmax(probabilities))


def test_a_border_output_is_neither_a_class_in_the_inspection_nor_the_class_explained():
    """The default nuclei model has a third output, the border between nuclei: a map of its own, not a class."""
    torch.manual_seed(2)
    model = build_model("unet", in_channels=1, num_classes=3, **TINY_CONFIGS["unet"]).eval()
    with torch.no_grad():  # make the border output win every pixel, as it would mislead a softmax over all three
        model.head.bias[2] = 50.0
    meta = _Meta()
    meta.objects = {"boundary_channel": 2}
    pixels = np.random.default_rng(2).random((32, 32)).astype(np.float32)
    inspector = TapInspector(model, meta, device="cpu")
    inspection = run_request(inspector, pixels, {"view": (0, 0, 32, 32)})
    assert inspection.num_classes == 2 and inspection.class_names == ["background", "nucleus"]
    np.testing.assert_allclose(inspection.probabilities.sum(axis=0), 1.0, atol=1e-5)
    result = explain_pixel(inspector, pixels, 9, 20, side=32)
    assert result.class_index in (0, 1) and result.class_name in ("background", "nucleus")
    assert result.probability == pytest.approx(float(inspection.probabilities[result.class_index, 20, 9]), abs=1e-4)
