"""Training data: the validation hold-out, random crops, and augmentation that keeps masks aligned."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from segstudio.engine.training.data import CropDataset, LabelledImage, holdout_split
from tests.engine.training.test_loop import blob_image


def test_holdout_is_deterministic_and_about_a_fifth():
    ids = [hashlib.sha256(str(i).encode()).hexdigest()[:16] for i in range(500)]
    held = holdout_split(ids)
    assert held == holdout_split(list(reversed(ids)))
    assert 0.14 < len(held) / len(ids) < 0.26
    assert len(holdout_split(ids[:2])) == 1 and holdout_split(ids[:1]) == set()
    assert [len(holdout_split(ids[:n])) for n in (3, 4, 5, 7, 8, 10, 12)] == [1, 1, 1, 1, 2, 2, 2]


def test_three_exported_images_train_on_two_and_check_one(tmp_path):
    """Two of three entries marked "val" by the dataset is too many: the plan and the run both set aside one."""
    from segstudio.engine.training.data import load_training_data
    from segstudio.engine.training.split import plan_for_folders
    from tests.engine.training.test_loop import write_dataset

    data = write_dataset(tmp_path / "three", n=3, val_every=2)  # entries 0 and 2 are marked "val"
    plan = plan_for_folders([data])
    assert (plan.train_images, plan.check_images) == (2, 1)
    assert plan.describe() == "3 images: 2 train the new model, 1 is set aside to check it."
    loaded = load_training_data([data], in_channels=1, normalisation={"kind": "percentile", "low": 1, "high": 99},
                                num_classes=2, val_whole_max_pixels=1 << 20)
    assert (len(loaded.train), len(loaded.val)) == (2, 1)
    # A dataset that marks about a fifth keeps its own choice (scores stay comparable as it grows).
    data10 = write_dataset(tmp_path / "ten", n=10, val_every=5)  # entries 0 and 5
    assert plan_for_folders([data10]).source == "dataset"
    assert plan_for_folders([data10]).check_images == 2


def test_one_image_is_cut_into_a_training_part_and_a_checked_strip(tmp_path):
    from segstudio.engine.training.split import plan_for_folders
    from tests.engine.training.test_loop import write_dataset

    plan = plan_for_folders([write_dataset(tmp_path / "one", n=1, val_every=None)])
    assert (plan.source, plan.train_images, plan.check_images) == ("strip", 1, 1)
    assert "80% of the image" in plan.describe()


# --- crops and augmentation ----------------------------------------------------------------------
def _striped_item(h=20, w=30):
    labels = np.zeros((h, w), np.uint8)
    labels[:, ::3] = 1
    labels[5:9, :] = 1
    image = torch.from_numpy(labels.astype(np.float32))[None]
    return LabelledImage("test:0", image, labels, hand=labels.astype(bool))


@pytest.mark.parametrize("augment", [False, True])
def test_crops_pad_small_images_and_move_targets_with_the_image(augment):
    item = _striped_item()
    ds = CropDataset([item], 32, augment=augment, strength=0.0, hand_weight=4.0, seed=3)
    seen_padding = False
    for k in range(40):
        image, label, weight = ds[k]
        assert image.shape == (1, 32, 32) and label.shape == (32, 32) and weight.shape == (32, 32)
        valid = weight > 0
        assert int(valid.sum()) == 20 * 30  # flips and quarter turns lose no pixel
        seen_padding |= bool((~valid).any())
        # Flips/turns are lossless: where valid, label, image and hand weight still agree pixel by pixel.
        assert torch.equal(label[valid], (image[0][valid] > 0.5).long())
        assert torch.equal(weight[valid], torch.where(label[valid] == 1, 4.0, 1.0))
        assert torch.all(label[~valid] == 0) and torch.all(image[0][~valid] == 0)
    assert seen_padding


def test_rotation_and_intensity_keep_masks_aligned():
    rng = np.random.default_rng(0)
    pixels, mask = blob_image(rng, 96)
    image = torch.from_numpy(mask.astype(np.float32) * 0.8 + 0.1)[None]
    item = LabelledImage("test:1", image, mask, hand=np.zeros_like(mask, bool))
    ds = CropDataset([item], 64, augment=True, strength=1.0, hand_weight=1.0, seed=0)
    agreement, dropped = [], 0
    for k in range(30):
        image_k, label, weight = ds[k]
        valid = weight > 0
        dropped += int((~valid).sum())
        agreement.append(float(((image_k[0] > 0.45) == (label == 1))[valid].float().mean()))
    assert np.mean(agreement) > 0.95  # boundaries blur a little under bilinear rotation and noise
    assert dropped > 0  # small-angle rotations brought in corners that the loss ignores


def test_same_seed_same_crops():
    item = _striped_item(60, 60)
    a = CropDataset([item], 32, augment=True, strength=1.0, hand_weight=1.0, seed=5)
    b = CropDataset([item], 32, augment=True, strength=1.0, hand_weight=1.0, seed=5)
    for k in (0, 1, 7):
        for x, y in zip(a[k], b[k]):
            assert torch.equal(x, y)
    assert not torch.equal(a[0][0], a[len(a)][0])  # the next epoch draws new crops
