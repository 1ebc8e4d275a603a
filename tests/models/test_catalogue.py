"""The New Model catalogue states what each network costs: its figures must be the built networks'."""
import pytest
import torch

from segstudio.models.catalogue import NETWORKS, network
from segstudio.models.registry import build_model, list_models


def _count(arch, config):
    with torch.device("meta"):
        model = build_model(arch, in_channels=1, num_classes=2, **config)
    return sum(p.numel() for p in model.parameters())


def test_every_registered_network_is_offered():
    assert sorted(n.arch for n in NETWORKS) == sorted(list_models())


@pytest.mark.parametrize("choice", NETWORKS, ids=lambda n: n.arch)
def test_stated_parameter_counts_are_the_built_networks(choice):
    assert _count(choice.arch, choice.config) == choice.parameters
    if choice.imagenet_config is not None:
        assert _count(choice.arch, choice.imagenet_config) == choice.imagenet_parameters


def test_cost_line_says_weights_and_tile_time():
    text = network("unet").cost()
    assert "1.9 M weights" in text and "per 512 x 512 tile" in text
    with pytest.raises(ValueError, match="choose one of"):
        network("resnet")
