import pytest
import torch
import torch.nn as nn

from segstudio.models.registry import build_model
from segstudio.models.taps import run_with_taps


def test_levels_follow_the_unet_recipe():
    model = build_model("unet", in_channels=1, num_classes=2, depth=3, base_channels=4)
    for level, width in zip((1, 2, 3), (4, 8, 16)):
        enc = getattr(model, f"enc{level}")
        convs = [m for m in enc.modules() if isinstance(m, nn.Conv2d)]
        assert [c.kernel_size for c in convs] == [(3, 3), (3, 3)]
        assert [c.out_channels for c in convs] == [width, width]
        assert sum(isinstance(m, nn.BatchNorm2d) for m in enc.modules()) == 2
        assert sum(isinstance(m, nn.ReLU) for m in enc.modules()) == 2
        assert isinstance(getattr(model, f"pool{level}"), nn.MaxPool2d)
        up = getattr(model, f"dec{level}").up
        assert isinstance(up, nn.ConvTranspose2d)
        assert up.kernel_size == (2, 2) and up.stride == (2, 2)
        assert (up.in_channels, up.out_channels) == (2 * width, width)
    assert model.bottleneck.block2.conv.out_channels == 32
    assert not hasattr(model, "enc4")
    assert model.stride == 8


def test_published_defaults():
    with torch.device("meta"):
        model = build_model("unet", in_channels=1, num_classes=2)
    assert model.config["depth"] == 4 and model.config["base_channels"] == 64
    assert model.bottleneck.block1.conv.out_channels == 1024


def test_skip_up_and_merge_taps_have_the_expected_shapes():
    torch.manual_seed(0)
    depth, base = 3, 4
    model = build_model("unet", in_channels=1, num_classes=2, depth=depth, base_channels=base).eval()
    with torch.no_grad():
        _, taps = run_with_taps(model, torch.randn(1, 1, 37, 53))
    padded = (40, 56)  # next multiples of 2**depth
    for level in range(1, depth + 1):
        width = base * 2 ** (level - 1)
        size = (padded[0] // 2 ** (level - 1), padded[1] // 2 ** (level - 1))
        assert taps[f"enc{level}"].shape == (1, width, *size)
        assert taps[f"skip{level} (from enc{level})"].shape == (1, width, *size)
        assert taps[f"up{level} (decoder before concat)"].shape == (1, width, *size)
        assert taps[f"merge{level} (after concat)"].shape == (1, 2 * width, *size)
        # The skip is literally the encoder tensor, and the merge is [skip, up] side by side.
        assert torch.equal(taps[f"skip{level} (from enc{level})"], taps[f"enc{level}"])
        merged = torch.cat([taps[f"skip{level} (from enc{level})"], taps[f"up{level} (decoder before concat)"]], 1)
        assert torch.equal(taps[f"merge{level} (after concat)"], merged)


def test_output_depends_on_the_skip_connection():
    torch.manual_seed(0)
    model = build_model("unet", in_channels=1, num_classes=2, depth=2, base_channels=4).eval()
    x = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        reference = model(x)
        handle = model.dec1.skip.register_forward_hook(lambda _m, _i, out: out + 1.0)
        try:
            changed = model(x)
        finally:
            handle.remove()
    assert not torch.allclose(reference, changed)


@pytest.mark.parametrize("depth", [1, 2, 5])
def test_depth_sets_the_padding_stride(depth):
    model = build_model("unet", in_channels=1, num_classes=2, depth=depth, base_channels=2).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 1, 33, 35)).shape == (1, 2, 33, 35)
    assert model.stride == 2**depth
