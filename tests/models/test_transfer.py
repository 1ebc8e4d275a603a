"""Weights carried into a model with other classes or another input keep what the shapes allow."""
import torch

from segstudio.models.transfer import class_map_by_name, scaling_dims, transfer_weights

TWO = [{"id": 0, "name": "background"}, {"id": 1, "name": "nucleus"}]
THREE = [{"id": 0, "name": "background"}, {"id": 1, "name": "Nucleus"}, {"id": 2, "name": "mitosis"}]


def test_class_map_matches_names_whatever_their_case():
    assert class_map_by_name(TWO, THREE) == {0: 0, 1: 1}
    assert class_map_by_name(THREE, [{"id": 0, "name": "background"}, {"id": 1, "name": "mitosis"}]) == {0: 0, 1: 2}


def test_unet_keeps_encoder_and_shared_head_rows_new_class_starts_fresh(build_tiny):
    src = build_tiny("unet", num_classes=2, seed=1)
    dst = build_tiny("unet", num_classes=3, seed=2)
    fresh_row = dst.head.weight[2].clone()
    report = transfer_weights(src, dst, class_map_by_name(TWO, THREE), TWO, THREE)
    assert torch.equal(dst.enc1.block1.conv.weight, src.enc1.block1.conv.weight)
    assert torch.equal(dst.head.weight[:2], src.head.weight)
    assert torch.equal(dst.head.bias[:2], src.head.bias)
    assert torch.equal(dst.head.weight[2], fresh_row)
    assert report.class_rows == ["head.weight", "head.bias"]
    assert report.new_classes == ["mitosis"] and report.shared_classes == ["background", "Nucleus"]
    assert "mitosis" in " ".join(report.lines())
    x = torch.rand(1, 1, 32, 32)
    src.eval(), dst.eval()
    with torch.no_grad():  # the shared classes score exactly as before
        assert torch.allclose(dst(x)[:, :2], src(x), atol=1e-5)


def test_fcn_upsamplers_map_class_pairs_and_keep_bilinear_rows_for_new_classes(build_tiny):
    src = build_tiny("fcn8s", num_classes=2, seed=1)
    dst = build_tiny("fcn8s", num_classes=3, seed=2)
    class_dims, _ = scaling_dims("fcn8s", dst.config)
    assert class_dims["upscore2.weight"] == (0, 1) and class_dims["score_fr.weight"] == (0,)
    with torch.no_grad():
        src.upscore2.weight.add_(0.5)
    bilinear = dst.upscore2.weight[2, 2].clone()
    transfer_weights(src, dst, {0: 0, 1: 1})
    assert torch.equal(dst.upscore2.weight[:2, :2], src.upscore2.weight)
    assert torch.equal(dst.upscore2.weight[2, 2], bilinear)


def test_moved_classes_follow_their_names(build_tiny):
    src = build_tiny("unet", num_classes=3, seed=1)
    dst = build_tiny("unet", num_classes=3, seed=2)
    transfer_weights(src, dst, {0: 0, 1: 2, 2: 1})
    assert torch.equal(dst.head.weight[1], src.head.weight[2])
    assert torch.equal(dst.head.weight[2], src.head.weight[1])


def test_more_input_channels_give_the_same_answer_on_a_grey_image(build_tiny):
    src = build_tiny("deeplabv3plus", in_channels=1, num_classes=2, seed=1)
    dst = build_tiny("deeplabv3plus", in_channels=3, num_classes=2, seed=2)
    report = transfer_weights(src, dst, {0: 0, 1: 1})
    assert report.input_adapted == ["backbone.conv1.weight"] and not report.fresh
    grey = torch.rand(1, 1, 64, 64)
    src.eval(), dst.eval()
    with torch.no_grad():
        assert torch.allclose(dst(grey.repeat(1, 3, 1, 1)), src(grey), atol=1e-4)
