"""ImageNet weights come only from local files (a path, or the torch hub cache); nothing is downloaded."""
import logging
import pickle

import pytest
import torch
import torchvision

from segstudio.models.blocks import load_weight_file
from segstudio.models.registry import build_model


def _fake_weights(tv_builder, keep=lambda key: True):
    """Random tensors under torchvision's own parameter names and shapes (read off a meta-device build)."""
    with torch.device("meta"):
        reference = tv_builder().state_dict()
    generator = torch.Generator().manual_seed(0)
    return {k: torch.randn(v.shape, generator=generator) if v.is_floating_point()
            else torch.zeros(v.shape, dtype=v.dtype)
            for k, v in reference.items() if keep(k)}


@pytest.fixture
def hub_dir(tmp_path, monkeypatch):
    hub = tmp_path / "hub"
    (hub / "checkpoints").mkdir(parents=True)
    monkeypatch.setattr(torch.hub, "_hub_dir", str(hub))
    return hub


@pytest.fixture
def no_downloads(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)


def test_vgg16_weights_from_the_hub_cache_with_channel_adaptation(hub_dir, no_downloads):
    # Features only: the 400 MB classifier is not needed to check the feature mapping.
    state = _fake_weights(torchvision.models.vgg16, keep=lambda k: k.startswith("features."))
    torch.save(state, hub_dir / "checkpoints" / "vgg16-397923af.pth")
    model = build_model("fcn8s", in_channels=1, num_classes=2, fc_channels=8, pretrained_backbone=True)
    expected_first = state["features.0.weight"].mean(dim=1, keepdim=True)
    assert torch.equal(model.stage1.conv1.weight, expected_first)
    assert torch.equal(model.stage3.conv3.weight, state["features.14.weight"])
    assert torch.equal(model.stage5.conv3.bias, state["features.28.bias"])


def test_deconvnet_takes_vgg16_bn_weights_norms_included(hub_dir, no_downloads):
    state = _fake_weights(torchvision.models.vgg16_bn, keep=lambda k: k.startswith("features."))
    torch.save(state, hub_dir / "checkpoints" / "vgg16_bn-6c64b313.pth")
    model = build_model("deconvnet", in_channels=3, num_classes=2, fc_channels=8, pretrained_backbone=True)
    # vgg16_bn features: conv0 bn1 relu2 conv3 bn4 relu5 pool6 | conv7 bn8 ...
    assert torch.equal(model.enc1.conv1.weight, state["features.0.weight"])
    assert torch.equal(model.enc2.conv1.weight, state["features.7.weight"])
    assert torch.equal(model.enc2.bn1.running_mean, state["features.8.running_mean"])
    assert torch.equal(model.enc5.bn3.weight, state["features.41.weight"])


def test_resnet_weights_from_a_local_safetensors_path(tmp_path, no_downloads):
    from safetensors.torch import save_file

    state = _fake_weights(torchvision.models.resnet18)
    path = tmp_path / "my-resnet18.safetensors"
    save_file(state, str(path))
    model = build_model("pspnet", in_channels=2, num_classes=2, backbone="resnet18", pretrained_backbone=str(path))
    backbone = model.backbone
    assert torch.equal(backbone.conv1.weight, state["conv1.weight"].mean(dim=1, keepdim=True).repeat(1, 2, 1, 1))
    assert torch.equal(backbone.layer3[1].conv2.weight, state["layer3.1.conv2.weight"])
    assert torch.equal(backbone.layer4[0].downsample[1].running_var, state["layer4.0.downsample.1.running_var"])
    assert backbone.layer4[1].conv2.dilation == (4, 4)  # dilation survives loading


def test_rgb_weights_for_rgb_input_are_used_unchanged(tmp_path):
    state = _fake_weights(torchvision.models.resnet18)
    path = tmp_path / "resnet18.pth"
    torch.save(state, path)
    model = build_model("deeplabv3plus", in_channels=3, num_classes=2, backbone="resnet18",
                        pretrained_backbone=str(path))
    assert torch.equal(model.backbone.conv1.weight, state["conv1.weight"])


def test_missing_hub_weights_mean_random_init_with_a_note(hub_dir, no_downloads, caplog):
    with caplog.at_level(logging.INFO):
        model = build_model("deeplabv3plus", in_channels=1, num_classes=2, backbone="resnet18", width=0.25,
                            pretrained_backbone=True)
    assert model(torch.randn(2, 1, 32, 32)).shape == (2, 2, 32, 32)
    assert any("random initialisation" in r.getMessage() for r in caplog.records)


def test_a_named_weights_file_that_does_not_exist_is_an_error(tmp_path):
    missing = tmp_path / "nowhere" / "vgg16.pth"
    with pytest.raises(FileNotFoundError, match="nowhere"):
        build_model("fcn32s", in_channels=1, num_classes=2, width=1 / 16, fc_channels=8,
                    pretrained_backbone=str(missing))


def test_weights_for_a_different_network_are_refused(tmp_path):
    path = tmp_path / "wrong.pth"
    torch.save({"conv1.weight": torch.zeros(3, 3, 3, 3)}, path)
    with pytest.raises(ValueError, match="wrong.pth"):
        build_model("pspnet", in_channels=1, num_classes=2, backbone="resnet18", pretrained_backbone=str(path))


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_weight_files_never_run_pickled_code(tmp_path):
    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.pth"
    torch.save({"conv1.weight": _Payload(marker)}, path)
    with pytest.raises(pickle.UnpicklingError):
        load_weight_file(path)
    assert not marker.exists()
