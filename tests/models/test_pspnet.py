import pytest
import torch
import torch.nn as nn

from segstudio.models.taps import run_with_taps


@pytest.mark.parametrize("backbone", ["resnet18", "resnet34", "resnet50"])
def test_dilated_backbone_keeps_one_eighth_resolution(build_tiny, backbone):
    model = build_tiny("pspnet", backbone=backbone).eval()
    with torch.no_grad():
        logits, taps = run_with_taps(model, torch.randn(1, 1, 64, 80))
    assert logits.shape == (1, 3, 64, 80)
    assert taps["layer2"].shape[-2:] == (8, 10)
    assert taps["layer3"].shape[-2:] == (8, 10)
    assert taps["layer4"].shape[-2:] == (8, 10)
    dilations = {m.dilation for m in model.backbone.layer4.modules() if isinstance(m, nn.Conv2d)}
    assert (4, 4) in dilations


def test_pyramid_pooling_bins(build_tiny):
    model = build_tiny("pspnet").eval()
    assert model.ppm.bins == (1, 2, 3, 6)
    for b in model.ppm.bins:
        assert getattr(model.ppm, f"bin{b}").pool.output_size == b
    with torch.no_grad():
        _, taps = run_with_taps(model, torch.randn(1, 1, 96, 96))
    features = taps["layer4"]
    bins = [taps[f"ppm bin {b}"] for b in (1, 2, 3, 6)]
    for pooled in bins:
        assert pooled.shape[-2:] == features.shape[-2:]
    # The one-bin level is the same everywhere (global context); the finer ones vary across the tile.
    assert torch.allclose(bins[0], bins[0][..., :1, :1].expand_as(bins[0]))
    assert not torch.allclose(bins[3], bins[3][..., :1, :1].expand_as(bins[3]))
    reduced = sum(p.shape[1] for p in bins)
    assert taps["ppm concat"].shape[1] == features.shape[1] + reduced
    assert torch.equal(taps["ppm concat"][:, : features.shape[1]], features)


def test_trains_with_batch_size_one(build_tiny):
    model = build_tiny("pspnet").train()
    model(torch.randn(1, 1, 40, 40)).mean().backward()  # the 1x1 global bin must not need batch statistics
