import pytest
import torch.nn as nn

from segstudio.models import registry
from segstudio.models.registry import UnknownModelError, build_model, list_models, register
from tests.models.conftest import TINY_CONFIGS

CONTRACT_NAMES = ["unet", "fcn32s", "fcn16s", "fcn8s", "deconvnet", "pspnet", "deeplabv3plus"]


def test_every_contract_architecture_is_registered():
    assert sorted(list_models()) == sorted(CONTRACT_NAMES)
    assert sorted(TINY_CONFIGS) == sorted(CONTRACT_NAMES)


def test_unknown_name_error_lists_the_valid_names():
    with pytest.raises(UnknownModelError) as info:
        build_model("segformer", in_channels=1, num_classes=2)
    message = str(info.value)
    assert "segformer" in message
    for name in CONTRACT_NAMES:
        assert name in message
    assert isinstance(info.value, ValueError)
    assert info.value.valid == list_models()


def test_duplicate_registration_is_rejected_and_the_original_kept():
    with pytest.raises(ValueError, match="already registered"):
        register("unet")(lambda **kwargs: nn.Identity())
    model = build_model("unet", in_channels=1, num_classes=2, base_channels=2, depth=1)
    assert type(model).__name__ == "UNet"


def test_register_adds_a_buildable_name():
    @register("test-identity-net", description="for this test only")
    def build(*, in_channels, num_classes):
        return nn.Conv2d(in_channels, num_classes, 1)

    try:
        model = build_model("test-identity-net", in_channels=4, num_classes=3)
        assert model.in_channels == 4 and model.out_channels == 3
        assert "test-identity-net" in list_models()
    finally:
        del registry._REGISTRY["test-identity-net"]


@pytest.mark.parametrize("name", CONTRACT_NAMES)
def test_models_record_arch_and_full_config(build_tiny, name):
    model = build_tiny(name, in_channels=2, num_classes=4)
    assert model.arch == name
    assert model.config["in_channels"] == 2 and model.config["num_classes"] == 4
    for key, value in TINY_CONFIGS[name].items():
        assert model.config[key] == value
    # Defaults are recorded too, so a checkpoint rebuilds the same network even if defaults change later.
    assert "pad_mode" in model.config


def test_unknown_config_option_is_an_error():
    with pytest.raises(TypeError):
        build_model("unet", in_channels=1, num_classes=2, base_channels=4, colour="blue")


def test_bad_channel_counts_are_rejected():
    with pytest.raises(ValueError, match="in_channels"):
        build_model("unet", in_channels=0, num_classes=2)
    with pytest.raises(ValueError, match="num_classes"):
        build_model("unet", in_channels=1, num_classes=0)
