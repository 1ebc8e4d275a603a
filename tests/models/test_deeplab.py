import pytest
import torch

from segstudio.models.blocks import SeparableConv
from segstudio.models.taps import list_taps, run_with_taps


@pytest.mark.parametrize("output_stride, rates", [(16, (6, 12, 18)), (8, (12, 24, 36))])
def test_output_stride_and_atrous_rates(build_tiny, output_stride, rates):
    model = build_tiny("deeplabv3plus", output_stride=output_stride).eval()
    names = [t.name for t in list_taps(model)]
    for rate in rates:
        assert f"aspp branch rate {rate}" in names
        branch = getattr(model.aspp, f"rate{rate}")
        assert isinstance(branch, SeparableConv)
        assert branch.depthwise.dilation == (rate, rate)
        assert branch.depthwise.groups == branch.depthwise.in_channels  # depthwise
    with torch.no_grad():
        logits, taps = run_with_taps(model, torch.randn(1, 1, 64, 96))
    assert logits.shape == (1, 3, 64, 96)
    assert taps["layer4"].shape[-2:] == (64 // output_stride, 96 // output_stride)
    assert taps["low-level skip"].shape[-2:] == (16, 24)
    assert taps["context upsampled"].shape[-2:] == (16, 24)
    merged = taps["merge (after concat)"]
    assert merged.shape[1] == taps["context upsampled"].shape[1] + taps["low-level skip"].shape[1]


def test_decoder_convolutions_are_separable(build_tiny):
    model = build_tiny("deeplabv3plus")
    separable = [m for m in model.decoder.modules() if isinstance(m, SeparableConv)]
    assert len(separable) == 2


def test_low_level_skip_feeds_the_output(build_tiny):
    model = build_tiny("deeplabv3plus", seed=2).eval()
    x = torch.randn(1, 1, 64, 64)
    with torch.no_grad():
        reference = model(x)
        handle = model.low_level.register_forward_hook(lambda _m, _i, out: torch.zeros_like(out))
        try:
            changed = model(x)
        finally:
            handle.remove()
    assert not torch.allclose(reference, changed)


def test_resnet50_layout_and_batch_size_one_training(build_tiny):
    model = build_tiny("deeplabv3plus", backbone="resnet50").train()
    from segstudio.models.backbones import Bottleneck

    assert isinstance(model.backbone.layer1[0], Bottleneck)
    # Bottleneck blocks widen 4x: layer1 ends at 4 * 64 * width, layer4 at 4 * 512 * width.
    assert model.backbone.channels["layer4"] == 8 * model.backbone.channels["layer1"]
    model(torch.randn(1, 1, 48, 48)).mean().backward()  # image pooling must not need batch statistics
