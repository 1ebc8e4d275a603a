import torch
import torch.nn as nn
import torch.nn.functional as F

from segstudio.models.deconvnet import MaxUnpool2x2
from segstudio.models.taps import run_with_taps


def test_decoder_unpools_with_the_encoders_pooling_indices(build_tiny):
    model = build_tiny("deconvnet", num_classes=2, seed=3).eval()
    assert all(getattr(model, f"pool{i}").return_indices for i in range(1, 6))
    assert all(isinstance(getattr(model, f"unpool{i}"), MaxUnpool2x2) for i in range(1, 6))
    with torch.no_grad():
        _, taps = run_with_taps(model, torch.randn(1, 1, 64, 64))
    for level in (1, 3):
        enc = taps[f"enc{level}"]
        unpooled = taps[f"unpool{level} (at pool{level} maxima)"]
        assert unpooled.shape == enc.shape
        # Per 2x2 window and channel, at most one position holds a value ...
        nonzero_per_window = F.avg_pool2d((unpooled != 0).float(), 2) * 4
        assert nonzero_per_window.max() <= 1
        assert nonzero_per_window.sum() > 0
        # ... and it is where the encoder had its maximum.
        window_max = F.interpolate(F.max_pool2d(enc, 2), scale_factor=2, mode="nearest")
        where = unpooled != 0
        assert torch.equal(enc[where], window_max[where])


def test_decoder_mirrors_the_encoder(build_tiny):
    model = build_tiny("deconvnet", num_classes=2)
    for level, count in zip(range(1, 6), (2, 2, 3, 3, 3)):
        enc_convs = [m for m in getattr(model, f"enc{level}").modules() if isinstance(m, nn.Conv2d)]
        dec_convs = [m for m in getattr(model, f"dec{level}").modules() if isinstance(m, nn.ConvTranspose2d)]
        assert len(enc_convs) == len(dec_convs) == count
        assert dec_convs[0].in_channels == enc_convs[-1].out_channels


def test_output_depends_on_where_the_maxima_were(build_tiny):
    """Same pooled values, different remembered positions: the unpooled map, hence the output, moves."""
    model = build_tiny("deconvnet", num_classes=2, seed=4).eval()
    x = torch.randn(1, 1, 64, 64)

    def shifted_indices(_module, _inputs, output):
        pooled, indices = output
        return pooled, indices.flip(-1)  # same values, positions taken from elsewhere in the row

    with torch.no_grad():
        reference = model(x)
        handle = model.pool1.register_forward_hook(shifted_indices)
        try:
            changed = model(x)
        finally:
            handle.remove()
    assert not torch.allclose(reference, changed)


def test_unpooling_puts_each_value_where_torch_max_unpool_does():
    torch.manual_seed(0)
    maps = torch.randn(2, 3, 8, 12, requires_grad=True)
    pooled, where = nn.MaxPool2d(2, 2, return_indices=True)(maps)
    ours = MaxUnpool2x2()(pooled, where)
    torch.testing.assert_close(ours, nn.MaxUnpool2d(2, 2)(pooled, where), rtol=0, atol=0)
    ours.sum().backward()
    assert maps.grad.sum() == pooled.numel()  # the gradient reaches each maximum once
