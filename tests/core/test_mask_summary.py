"""The words shown after Predict: objects per class and the share of the image they cover."""
import numpy as np

from segstudio.core.labels import ClassTable
from segstudio.core.mask_summary import count_objects, describe_summary, plural, summarise_mask

TABLE = ClassTable.from_list([
    {"id": 0, "name": "background", "color": [0, 0, 0]},
    {"id": 1, "name": "nucleus", "color": [255, 0, 0]},
    {"id": 2, "name": "mitosis", "color": [0, 255, 0]},
])


def test_patches_touching_at_a_corner_are_one_object():
    mask = np.zeros((10, 10), np.uint8)
    mask[1:3, 1:3] = 1
    mask[3:5, 3:5] = 1  # touches the first at a corner
    mask[7:9, 7:9] = 1
    assert count_objects(mask, 1) == 2
    assert count_objects(mask, 2) == 0


def test_summary_counts_objects_and_shares_per_class():
    mask = np.zeros((20, 10), np.uint16)
    mask[0:2, 0:10] = 1  # 20 px
    mask[5:7, 0:2] = 1  # 4 px
    mask[10, 5] = 2
    summary = summarise_mask(mask, TABLE)
    assert [(s.name, s.objects, s.pixels) for s in summary] == [("nucleus", 2, 24), ("mitosis", 1, 1)]
    assert summary[0].share == 24 / 200
    assert describe_summary(summary) == "2 nuclei (12% of the image), 1 mitosis (0.5%)"
    assert describe_summary(summarise_mask(np.zeros((4, 4), np.uint8), TABLE)) == "nothing"


def test_class_names_in_the_plural():
    assert [plural(n, 2) for n in ("nucleus", "mitosis", "cell", "body", "nucleus")] == [
        "nuclei", "mitoses", "cells", "bodies", "nuclei"]
    assert plural("nucleus", 1) == "nucleus"


def test_objects_split_along_borders_are_counted_per_class_instead_of_patches():
    from segstudio.core.mask_summary import object_counts

    mask = np.zeros((10, 20), np.uint8)
    mask[2:8, 2:12] = 1  # one patch holding two touching objects
    mask[2:5, 15:18] = 2
    ids = np.zeros(mask.shape, np.uint32)
    ids[2:8, 2:7], ids[2:8, 7:12], ids[2:5, 15:18] = 5, 9, 11
    counts = object_counts(mask, ids)
    assert counts == {1: 2, 2: 1}
    summary = summarise_mask(mask, ClassTable.default(), counts)
    assert [s.objects for s in summary] == [2, 1]
    assert [s.objects for s in summarise_mask(mask, ClassTable.default())] == [1, 1]
