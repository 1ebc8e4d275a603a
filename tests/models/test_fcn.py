import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from segstudio.models.backbones import convolutionalize_classifier, vgg_stage_convs
from segstudio.models.blocks import bilinear_upsampler
from segstudio.models.taps import run_with_taps


@pytest.mark.parametrize("factor", [2, 8, 16, 32])
def test_bilinear_init_matches_interpolate_away_from_borders(factor):
    torch.manual_seed(0)
    up = bilinear_upsampler(3, factor)
    x = torch.randn(1, 3, 6, 7)
    with torch.no_grad():
        ours = up(x)
    reference = F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)
    assert ours.shape == reference.shape == (1, 3, 6 * factor, 7 * factor)
    m = factor  # the outermost half input pixel differs: interpolate clamps, the convolution sees zeros
    torch.testing.assert_close(ours[..., m:-m, m:-m], reference[..., m:-m, m:-m], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(ours[..., :1, :], reference[..., :1, :])  # the border really is different


def test_fcn_upsamplers_start_as_bilinear(build_tiny):
    model = build_tiny("fcn8s", num_classes=2)
    x = torch.randn(1, 2, 5, 5)
    for module, factor in ((model.upscore2, 2), (model.upscore_pool4, 2), (model.upscore, 8)):
        with torch.no_grad():
            ours = module(x)
        reference = F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)
        torch.testing.assert_close(ours[..., factor:-factor, factor:-factor],
                                   reference[..., factor:-factor, factor:-factor], rtol=1e-5, atol=1e-5)
        assert module.weight.requires_grad  # initialised to bilinear, but learned


@pytest.mark.parametrize("name, maps, absent", [
    ("fcn32s", ["score_32s"], ["score_pool4", "score_16s", "score_pool3", "score_8s"]),
    ("fcn16s", ["score_32s", "score_pool4", "score_16s"], ["score_pool3", "score_8s"]),
    ("fcn8s", ["score_32s", "score_pool4", "score_16s", "score_pool3", "score_8s"], []),
])
def test_score_maps_at_their_strides(build_tiny, name, maps, absent):
    model = build_tiny(name, num_classes=4).eval()
    with torch.no_grad():
        logits, taps = run_with_taps(model, torch.randn(1, 1, 64, 96))
    assert logits.shape == (1, 4, 64, 96)
    strides = {"score_32s": 32, "score_pool4": 16, "score_16s": 16, "score_pool3": 8, "score_8s": 8}
    for tap in maps:
        assert taps[tap].shape == (1, 4, 64 // strides[tap], 96 // strides[tap])
    for tap in absent:
        assert tap not in taps
    for pool, stride in (("pool3", 8), ("pool4", 16), ("pool5", 32)):
        assert taps[pool].shape[-2:] == (64 // stride, 96 // stride)


def test_fcn_skip_maps_are_fused_sums(build_tiny):
    model = build_tiny("fcn8s", num_classes=3).eval()
    with torch.no_grad():
        _, taps = run_with_taps(model, torch.randn(1, 1, 64, 64))
    torch.testing.assert_close(taps["score_16s"], taps["upscore2 (score_32s x2)"] + taps["score_pool4"])
    torch.testing.assert_close(taps["score_8s"], taps["upscore_16s (score_16s x2)"] + taps["score_pool3"])


def _output_with(model, x, replace):
    """Forward pass where stage outputs are replaced: {stage name: tensor or callable(tensor)}."""
    handles = []
    for stage, value in replace.items():
        hook = (lambda _m, _i, out, v=value: v(out)) if callable(value) else (lambda _m, _i, _o, v=value: v)
        handles.append(getattr(model, stage).register_forward_hook(hook))
    try:
        with torch.no_grad():
            return model(x)
    finally:
        for handle in handles:
            handle.remove()


def _give_skips_weights(model):
    torch.manual_seed(1)
    with torch.no_grad():
        for name in ("score_pool4", "score_pool3"):
            layer = getattr(model, name, None)
            if layer is not None:
                layer.weight.normal_(std=0.5)
                layer.bias.normal_(std=0.1)


@pytest.mark.parametrize("name", ["fcn16s", "fcn8s"])
def test_a_new_fcn_starts_from_its_32s_stream(build_tiny, name):
    """The paper's start: pool4/pool3 score layers at zero, so a new FCN-16s/8s gives its 32s stream's answer,
    and the skip layers still learn from the first step."""
    model = build_tiny(name, num_classes=3).eval()
    for layer in (model.score_pool4, getattr(model, "score_pool3", None)):
        if layer is not None:
            assert not layer.weight.any() and not layer.bias.any()
    x = torch.randn(1, 1, 64, 64)
    with torch.no_grad():
        logits, taps = run_with_taps(model, x, ["score_32s"])
        coarse = model.upscore2(taps["score_32s"])  # the 32s scores taken to 1/16 ...
        if name == "fcn8s":
            coarse = model.upscore_pool4(coarse)  # ... and to 1/8, with nothing added on the way
        torch.testing.assert_close(logits, model.upscore(coarse))
    model.train()
    F.cross_entropy(model(x), torch.randint(0, 3, (1, 64, 64))).backward()
    assert model.score_pool4.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("name, uses_pool4, uses_pool3", [("fcn32s", False, False), ("fcn16s", True, False),
                                                          ("fcn8s", True, True)])
def test_skip_connections_use_pool3_and_pool4_directly(build_tiny, name, uses_pool4, uses_pool3):
    """Perturb pool4 (or pool3) while pinning everything computed from it in the backbone. Only a network
    with a skip from that pool can still change its output."""
    model = build_tiny(name, num_classes=3).eval()
    _give_skips_weights(model)  # a new FCN's skip score layers are zero: the wiring shows once they are not
    x = torch.randn(1, 1, 64, 64)
    with torch.no_grad():
        _, taps = run_with_taps(model, x, ["pool4", "pool5"])
    reference = _output_with(model, x, {})
    bump = lambda out: out + torch.randn_like(out)  # noqa: E731
    # pool4 perturbed, pool5 pinned to its clean value: only a pool4 skip can carry the change.
    changed4 = _output_with(model, x, {"stage4": bump, "stage5": taps["pool5"]})
    # pool3 perturbed, pool4 and pool5 pinned.
    changed3 = _output_with(model, x, {"stage3": bump, "stage4": taps["pool4"], "stage5": taps["pool5"]})
    assert (not torch.allclose(reference, changed4)) == uses_pool4
    assert (not torch.allclose(reference, changed3)) == uses_pool3
    # Sanity check of the method: perturbing pool5 itself changes every variant.
    assert not torch.allclose(reference, _output_with(model, x, {"stage5": bump}))


class TinyVGGClassifier(nn.Module):
    """VGG16's layout at 1/16 width with a VGG-style classifier: 224x224 in, 7x7 features, class scores out."""

    def __init__(self):
        super().__init__()
        widths, counts = (4, 8, 16, 32, 32), (2, 2, 3, 3, 3)
        layers, previous = [], 3
        for width, count in zip(widths, counts):
            layers += [vgg_stage_convs(previous, width, count, batch_norm=False), nn.MaxPool2d(2, 2)]
            previous = width
        self.features = nn.Sequential(*layers)
        self.fc6, self.fc7, self.fc8 = nn.Linear(32 * 7 * 7, 24), nn.Linear(24, 24), nn.Linear(24, 10)

    def classify(self, x):
        h = torch.flatten(self.features(x), 1)
        return self.fc8(F.relu(self.fc7(F.relu(self.fc6(h)))))


def test_convolutionalized_classifier_equals_the_classifier():
    torch.manual_seed(0)
    net = TinyVGGClassifier().eval()
    x = torch.randn(2, 3, 224, 224)
    conv6, conv7, conv8 = convolutionalize_classifier(net.fc6, net.fc7, net.fc8)
    assert conv6.kernel_size == (7, 7) and conv7.kernel_size == (1, 1) and conv8.out_channels == 10
    with torch.no_grad():
        expected = net.classify(x)
        feats = net.features(x)
        assert feats.shape[-2:] == (7, 7)
        dense = conv8(F.relu(conv7(F.relu(conv6(feats)))))
        assert dense.shape == (2, 10, 1, 1)
        torch.testing.assert_close(dense[:, :, 0, 0], expected, rtol=1e-4, atol=1e-5)

        # FCN's padded fc6 keeps the grid; its centre position sees exactly the classifier's 7x7 input.
        padded6 = convolutionalize_classifier(net.fc6, net.fc7, fc6_padding=3)[0]
        centre = padded6(feats)[:, :, 3, 3]
        torch.testing.assert_close(centre, net.fc6(torch.flatten(feats, 1)), rtol=1e-4, atol=1e-5)

        # On a larger image the convolutions score every 7x7 window, each equal to classifying that window.
        wide = net.features(torch.randn(1, 3, 224, 320))  # 7 x 10 feature grid
        scores = conv8(F.relu(conv7(F.relu(conv6(wide)))))
        assert scores.shape == (1, 10, 1, 4)
        window = wide[:, :, :, 2:9]
        torch.testing.assert_close(scores[:, :, 0, 2], net.fc8(F.relu(net.fc7(F.relu(net.fc6(
            torch.flatten(window, 1)))))), rtol=1e-4, atol=1e-5)
