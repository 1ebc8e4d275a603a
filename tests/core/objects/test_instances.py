"""Touching objects of one class come apart; separate ones stay whole."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from segstudio.core.objects.instances import (
    connected_objects,
    from_interior,
    ids_dtype,
    object_classes,
    relabel,
    split_touching,
)

# A NumPy warning here once hid NaN seeds (a class covering the whole image): any warning is a failure.
pytestmark = pytest.mark.filterwarnings("error")


def two_touching_and_one_apart() -> np.ndarray:
    mask = np.zeros((100, 120), np.uint8)
    cv2.circle(mask, (30, 50), 15, 1, -1)
    cv2.circle(mask, (56, 50), 15, 1, -1)  # overlaps the first: one blob in the class mask
    cv2.circle(mask, (100, 20), 9, 2, -1)  # another class, on its own
    return mask


def test_distance_watershed_splits_two_touching_nuclei():
    mask = two_touching_and_one_apart()
    assert connected_objects(mask).max() == 2  # as connected patches: the pair is one object
    ids = split_touching(mask)
    assert ids.max() == 3
    assert ids[50, 30] != ids[50, 56]  # each centre in its own object
    assert np.array_equal(ids > 0, mask > 0)  # every mask pixel belongs to an object
    assert list(object_classes(ids, mask)[1:]) == sorted(object_classes(ids, mask)[1:])


def test_a_ragged_single_nucleus_is_not_cut():
    mask = np.zeros((60, 60), np.uint8)
    cv2.ellipse(mask, (30, 30), (18, 11), 30, 0, 360, 1, -1)
    rng = np.random.default_rng(3)
    edge = (cv2.dilate(mask, np.ones((3, 3))) - mask).astype(bool)
    mask[edge & (rng.random(mask.shape) < 0.4)] = 1
    assert split_touching(mask).max() == 1


def test_interior_channel_seeds_one_object_per_interior_patch():
    mask = two_touching_and_one_apart()
    interior = np.zeros(mask.shape, np.float32)
    cv2.circle(interior, (30, 50), 8, 0.9, -1)
    cv2.circle(interior, (56, 50), 8, 0.8, -1)
    ids = from_interior(mask, interior)
    assert ids.max() == 3
    assert ids[50, 30] != ids[50, 56]
    assert ids[20, 100] != 0  # an object without an interior seed is still an object


def test_ids_use_the_smallest_type_and_relabel_closes_gaps():
    assert ids_dtype(65535) == np.uint16 and ids_dtype(65536) == np.uint32
    ids = np.array([[0, 7, 7], [90000, 0, 3]], np.uint32)
    out = relabel(ids)
    assert out.dtype == np.uint16
    assert out.tolist() == [[0, 2, 2], [3, 0, 1]]


def test_dataset_entries_keep_their_objects_beside_the_class_mask(tmp_path):
    from segstudio.core.dataset import ExportItem, export_many, load_manifest, load_objects
    from segstudio.core.labels import ClassTable
    from segstudio.core.nnunet import export_nnunet

    mask = two_touching_and_one_apart()
    pixels = (mask * 100).astype(np.uint8)
    classes = ClassTable.default()
    classes.add("mitosis")
    export_many(tmp_path / "ds", [ExportItem(pixels, mask, "synthetic:a")], classes)
    (entry,) = load_manifest(tmp_path / "ds")["entries"]
    assert entry["objects"].startswith("objects/")
    objects = load_objects(tmp_path / "ds", entry)
    assert objects.max() == 2 and np.array_equal(objects > 0, mask > 0)  # connected patches by default
    # Objects the user edited travel as they are, and a re-export replaces them.
    edited = np.where(mask > 0, 7, 0).astype(np.uint16)
    export_many(tmp_path / "ds", [ExportItem(pixels, mask, "synthetic:a", objects=edited)], classes)
    (entry,) = load_manifest(tmp_path / "ds")["entries"]
    assert np.array_equal(load_objects(tmp_path / "ds", entry), edited)
    assert len(list((tmp_path / "ds" / "objects").iterdir())) == 1  # the replaced file is gone
    assert export_nnunet(tmp_path / "ds", tmp_path / "nnunet", dataset_id=7, name="x").is_dir()


def test_a_region_far_larger_than_a_nucleus_stays_whole_and_quick():
    rng = np.random.default_rng(0)
    mask = (rng.random((400, 400)) < 0.97).astype(np.uint8)  # a ragged tissue region, 155,000 px
    ids = split_touching(mask)
    patches = connected_objects(mask)
    biggest = np.bincount(patches.ravel())[1:].argmax() + 1
    assert len(np.unique(ids[patches == biggest])) == 1
    assert ids[mask > 0].min() >= 1


def test_a_class_covering_the_whole_image_is_one_object_and_two_halves_meeting_at_a_neck_split():
    full = np.ones((40, 50), np.uint8)  # an untrained model may call every pixel a nucleus
    ids = split_touching(full)
    assert ids.max() == 1 and (ids == 1).all()
    # Two discs that fill the image between them, no background pixel anywhere: still split at the neck.
    mask = np.zeros((60, 120), np.uint8)
    cv2.circle(mask, (30, 30), 29, 1, -1)
    cv2.circle(mask, (90, 30), 29, 1, -1)
    mask[mask == 0] = 2  # the rest is another class, so class 1 has background only where class 2 is
    split = split_touching(mask)
    assert split[30, 30] != split[30, 90] and split[30, 30] and split[30, 90]


def test_the_boundary_target_is_each_objects_rim_and_a_two_pixel_line_where_two_meet():
    from segstudio.core.objects.instances import boundary_target, from_boundary

    ids = np.zeros((12, 20), np.int32)
    ids[2:10, 2:10], ids[2:10, 10:18] = 1, 2  # two squares side by side: one rectangle in the class mask
    target = boundary_target(ids)
    assert target[5, 9] and target[5, 10]  # the line where they meet, one pixel on each side
    assert target[2, 5] and target[5, 2] and not target[5, 5] and not target[5, 14]
    assert not target[0, 0]  # background is never a border
    edge = np.zeros((6, 6), np.int32)
    edge[:, :3] = 1  # an object cut by the image edge has no border along the edge
    assert not boundary_target(edge)[:, 0].any() and boundary_target(edge)[1, 2]
    # Learnt perfectly, the border map gives the objects back exactly.
    mask = (ids > 0).astype(np.uint8)
    split = from_boundary(mask, target.astype(np.float32))
    assert split.max() == 2 and np.array_equal(relabel(split) > 0, ids > 0)
    assert len({(a, b) for a, b in zip(ids[ids > 0], split[ids > 0])}) == 2  # pixel for pixel the same pair
