"""Behaviour every architecture shares: any input size and channel count in, logits at that size out,
trainable end to end, declared taps produced in network order, and save/load reproducing the outputs."""
import pytest
import torch
import torch.nn.functional as F

from segstudio.models.checkpoint import ModelMeta, load_checkpoint, save_checkpoint
from segstudio.models.registry import build_model
from segstudio.models.taps import TAP_KINDS, list_taps, run_with_taps
from tests.models.conftest import TINY_CONFIGS

NAMES = list(TINY_CONFIGS)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("in_channels", [1, 3])
def test_logits_match_odd_input_sizes(build_tiny, name, in_channels):
    model = build_tiny(name, in_channels=in_channels, num_classes=3).eval()
    with torch.no_grad():
        for h, w in [(37, 53), (64, 64)]:
            logits = model(torch.randn(2, in_channels, h, w))
            assert logits.shape == (2, 3, h, w)
            assert torch.isfinite(logits).all()


@pytest.mark.parametrize("name", NAMES)
def test_tiny_inputs_and_every_pad_mode(build_tiny, name):
    for pad_mode in ("reflect", "replicate", "zeros"):
        model = build_tiny(name, in_channels=2, pad_mode=pad_mode).eval()
        with torch.no_grad():
            # 5x7 is smaller than the padding the deep networks need: reflection must not fail on it.
            assert model(torch.randn(1, 2, 5, 7)).shape == (1, 3, 5, 7)


@pytest.mark.parametrize("name", NAMES)
def test_wrong_channel_count_is_a_clear_error(build_tiny, name):
    model = build_tiny(name, in_channels=1)
    with pytest.raises(ValueError, match="1 input channel"):
        model(torch.randn(1, 3, 32, 32))


@pytest.mark.parametrize("name", NAMES)
def test_gradients_reach_the_first_layer(build_tiny, name):
    model = build_tiny(name, in_channels=2, num_classes=3, seed=1).train()
    x = torch.randn(2, 2, 37, 53)
    target = torch.randint(0, 3, (2, 37, 53))
    F.cross_entropy(model(x), target).backward()
    first = model.first_conv()
    assert first.in_channels == 2
    assert first.weight.grad is not None and first.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("name", NAMES)
def test_taps_are_declared_well(build_tiny, name):
    model = build_tiny(name)
    taps = list_taps(model)
    names = [t.name for t in taps]
    assert len(names) == len(set(names))
    assert taps[-1].name == "logits" and taps[-1].kind == "logits"
    for tap in taps:
        assert tap.kind in TAP_KINDS
        model.get_submodule(tap.module)  # raises if the path is wrong
        assert len(tap.description) > 20
    kinds = {t.kind for t in taps}
    assert {"encoder", "decoder", "logits"} <= kinds


@pytest.mark.parametrize("name", NAMES)
def test_taps_fire_in_declared_order_in_one_pass(build_tiny, name):
    model = build_tiny(name).eval()
    taps = list_taps(model)
    fired = []
    handles = [model.get_submodule(t.module).register_forward_hook(lambda *_a, n=t.name: fired.append(n))
               for t in taps]
    calls = []
    handles.append(model.register_forward_pre_hook(lambda *_a: calls.append(1)))
    try:
        x = torch.randn(1, 1, 37, 53)
        with torch.no_grad():
            logits, captured = run_with_taps(model, x)
    finally:
        for h in handles:
            h.remove()
    assert fired == [t.name for t in taps]  # network order is the order the tensors are produced
    assert len(calls) == 1
    assert list(captured) == [t.name for t in taps]
    assert torch.equal(captured["logits"], logits)
    with torch.no_grad():
        assert torch.equal(model(x), logits)


@pytest.mark.parametrize("name", ["unet", "fcn8s", "pspnet"])
def test_run_with_taps_selected_names_and_hook_cleanup(build_tiny, name):
    model = build_tiny(name).eval()
    taps = list_taps(model)
    chosen = [taps[-1].name, taps[1].name]
    with torch.no_grad():
        _, captured = run_with_taps(model, torch.randn(1, 1, 40, 40), chosen)
    assert list(captured) == [taps[1].name, taps[-1].name]  # network order, not request order
    with pytest.raises(ValueError, match=taps[0].name):
        run_with_taps(model, torch.randn(1, 1, 40, 40), ["no such tap"])
    with pytest.raises(ValueError):
        run_with_taps(model, torch.randn(1, 2, 40, 40))  # wrong channels: forward raises mid-way
    assert all(not m._forward_hooks for m in model.modules())


@pytest.mark.parametrize("name", NAMES)
def test_save_and_load_reproduce_outputs(build_tiny, name, tmp_path):
    model = build_tiny(name, in_channels=2, num_classes=3)
    # One training step so the norm statistics are no longer their initial values.
    model.train()
    model(torch.randn(2, 2, 48, 48)).sum().backward()
    model.eval()
    path = tmp_path / f"{name}.safetensors"
    save_checkpoint(path, model, ModelMeta(name=f"test-{name}", version=1, arch=name))
    loaded, meta = load_checkpoint(path)
    assert not loaded.training
    assert meta.arch == name and meta.config == model.config
    x = torch.randn(1, 2, 37, 53)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))


@pytest.mark.parametrize("name", NAMES)
def test_published_sizes_build_with_the_documented_shapes(name):
    # The meta device builds the full-size networks without allocating or computing anything.
    with torch.device("meta"):
        model = build_model(name, in_channels=3, num_classes=5)
        logits, captured = run_with_taps(model, torch.empty(1, 3, 100, 130))
    assert logits.shape == (1, 5, 100, 130)
    widest = max(t.shape[1] for t in captured.values())
    expected = {"unet": 1024, "fcn32s": 4096, "fcn16s": 4096, "fcn8s": 4096, "deconvnet": 4096,
                "pspnet": 4096, "deeplabv3plus": 2048}[name]
    assert widest == expected
