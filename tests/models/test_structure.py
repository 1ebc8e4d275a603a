"""What every architecture declares about itself: its encoder (and freezing it), and the structure of its taps
(resolution levels, which decoder tensor each skip is joined to)."""
import pytest
import torch
import torch.nn as nn

from segstudio.models.blocks import SegmentationModel
from segstudio.models.taps import TapSpec, list_taps, run_with_taps
from tests.models.conftest import TINY_CONFIGS

ARCHS = sorted(TINY_CONFIGS)
NORMS_WITH_STATISTICS = (nn.modules.batchnorm._BatchNorm, nn.modules.instancenorm._InstanceNorm)
# Large enough for batch norm at the coarsest level of every network (1/32 of 64 is 2x2).
INPUT = (2, 1, 64, 64)


def _running_statistics(modules):
    return {f"{owner}.{name}": buffer.clone()
            for owner, module in modules
            for name, buffer in module.named_buffers()}


def _parameter_ids(modules):
    return {id(p) for _, module in modules for p in module.parameters()}


# --- the encoder ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ARCHS)
def test_every_architecture_names_an_encoder_with_weights(build_tiny, name):
    model = build_tiny(name)
    assert isinstance(model, SegmentationModel)
    encoder = model.encoder_modules()
    names = [n for n, _ in encoder]
    assert encoder and len(set(names)) == len(names)
    for n, module in encoder:
        assert model.get_submodule(n) is module
        assert any(True for _ in module.parameters()), n
    # None inside another, so no parameter is counted twice.
    assert not any(a != b and a.startswith(b + ".") for a in names for b in names)
    # The encoder is a part of the network, not all of it: the head always stays outside.
    assert _parameter_ids(encoder) < {id(p) for p in model.parameters()}


@pytest.mark.parametrize("name", ARCHS)
def test_freezing_the_encoder_freezes_exactly_its_parameters_and_the_rest_still_trains(build_tiny, name):
    model = build_tiny(name)
    encoder_ids = _parameter_ids(model.encoder_modules())
    model.freeze_encoder()
    model.train()
    assert {id(p) for p in model.parameters() if not p.requires_grad} == encoder_ids

    outside = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    model(torch.rand(INPUT)).square().mean().backward()
    assert all(p.grad is None for p in model.parameters() if id(p) in encoder_ids)
    optimizer.step()
    moved = [n for n, p in model.named_parameters() if p.requires_grad and not torch.equal(p, outside[n])]
    assert moved, "nothing outside the encoder was trained"

    model.freeze_encoder(False)
    assert all(p.requires_grad for p in model.parameters())


@pytest.mark.parametrize("name", ARCHS)
def test_frozen_encoder_norms_keep_their_running_statistics_in_train_mode(build_tiny, name):
    model = build_tiny(name)
    encoder = model.encoder_modules()
    assert any(isinstance(m, NORMS_WITH_STATISTICS) for _, e in encoder for m in e.modules()) or name.startswith(
        "fcn"), "the test needs encoder norms to watch"  # VGG16 in the FCNs has no batch norm
    model.freeze_encoder()
    model.train()
    before = _running_statistics(encoder)
    decoder_norms = [(n, m) for n, m in model.named_modules()
                     if isinstance(m, NORMS_WITH_STATISTICS) and m.training]
    decoder_before = _running_statistics(decoder_norms)
    with torch.no_grad():
        model(torch.rand(INPUT))
    after = _running_statistics(encoder)
    assert before.keys() == after.keys()
    for key in before:
        assert torch.equal(before[key], after[key]), key
    # Norm layers outside the encoder still learn their statistics.
    decoder_after = _running_statistics(decoder_norms)
    assert all(not torch.equal(decoder_before[k], decoder_after[k]) for k in decoder_before
               if k.endswith("running_mean"))
    # Switching modes keeps the rule: eval() turns everything off, train() everything but the frozen norms.
    model.eval()
    model.train()
    assert all(not m.training for _, e in encoder for m in e.modules() if isinstance(m, NORMS_WITH_STATISTICS))
    model.freeze_encoder(False)
    assert all(m.training for m in model.modules())


# --- the taps --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ARCHS)
def test_every_skip_pairs_with_a_decoder_or_fusion_tap_at_its_level(build_tiny, name):
    specs = {spec.name: spec for spec in list_taps(build_tiny(name))}
    skips = [spec for spec in specs.values() if spec.kind == "skip"]
    for skip in skips:
        assert skip.pairs_with in specs, skip.name
        partner = specs[skip.pairs_with]
        assert partner.kind in ("decoder", "fusion"), skip.name
        assert partner.level == skip.level, skip.name
    assert all(spec.pairs_with is None for spec in specs.values() if spec.kind != "skip")


@pytest.mark.parametrize("name", ARCHS)
def test_levels_are_declared_and_never_decrease_through_the_encoder(build_tiny, name):
    specs = list_taps(build_tiny(name))
    assert all(spec.level is not None for spec in specs)
    encoder = [spec.level for spec in specs if spec.kind == "encoder"]
    assert encoder == sorted(encoder)
    assert [spec.level for spec in specs if spec.kind == "logits"] == [0]


@pytest.mark.parametrize("name", ARCHS)
def test_each_tap_tensor_has_the_size_its_level_declares(build_tiny, name):
    model = build_tiny(name).eval()
    specs = {spec.name: spec for spec in list_taps(model)}
    with torch.no_grad():
        _, tensors = run_with_taps(model, torch.rand(INPUT))
    assert tensors.keys() == specs.keys()
    for tap, tensor in tensors.items():
        side = INPUT[-1] // 2 ** specs[tap].level
        assert tuple(tensor.shape[-2:]) == (side, side), tap


def test_deeplab_levels_follow_its_output_stride(build_tiny):
    specs = {s.name: s for s in list_taps(build_tiny("deeplabv3plus", output_stride=8))}
    assert specs["layer4"].level == 3 and specs["aspp projection"].level == 3
    assert specs["low-level skip"].level == 2


def test_only_skip_taps_pair_with_another_and_levels_are_not_negative():
    with pytest.raises(ValueError, match="only skip taps"):
        TapSpec("dec1", "decoder", "dec1", "A decoder.", level=0, pairs_with="up1")
    with pytest.raises(ValueError, match="negative level"):
        TapSpec("enc1", "encoder", "enc1", "An encoder.", level=-1)
