import numpy as np

from segstudio.core.postprocess import apply_postprocess, fill_small_holes, remove_small_objects


def nucleus_with_nucleolus():
    labels = np.zeros((40, 40), np.uint8)
    yy, xx = np.mgrid[:40, :40]
    labels[(yy - 20) ** 2 + (xx - 20) ** 2 <= 12**2] = 1
    labels[18:21, 18:22] = 0  # a 12-pixel pinhole where the nucleolus is dark
    return labels


def test_enclosed_pinhole_is_filled_with_the_enclosing_class():
    labels = nucleus_with_nucleolus()
    assert fill_small_holes(labels, max_area=20) == 12
    assert (labels[18:21, 18:22] == 1).all()


def test_large_holes_edge_holes_and_holes_between_two_classes_are_kept():
    labels = nucleus_with_nucleolus()
    assert fill_small_holes(labels, max_area=11) == 0  # over the limit
    edge = np.ones((10, 10), np.uint8)
    edge[0:2, 4:6] = 0  # open to the image border
    assert fill_small_holes(edge, max_area=50) == 0
    two = np.ones((10, 10), np.uint8)
    two[:, 5:] = 2
    two[4:6, 4:6] = 0  # touches class 1 and class 2
    assert fill_small_holes(two, max_area=50) == 0 and (two[4:6, 4:6] == 0).all()


def test_small_specks_go_and_real_objects_stay():
    labels = np.zeros((30, 30), np.uint8)
    labels[2, 2] = 1  # one-pixel speck
    labels[10:20, 10:20] = 1  # a real object
    labels[25:27, 25:27] = 2  # a 4-pixel speck of another class
    assert remove_small_objects(labels, min_area=5) == 5
    assert labels[2, 2] == 0 and labels[25, 25] == 0 and (labels[10:20, 10:20] == 1).all()


def test_rules_from_metadata_and_no_rules_change_nothing():
    labels = nucleus_with_nucleolus()
    labels[1, 1] = 1
    untouched = labels.copy()
    assert apply_postprocess(labels, None) == 0 and apply_postprocess(labels, {}) == 0
    np.testing.assert_array_equal(labels, untouched)
    assert apply_postprocess(labels, {"fill_holes_px": 64, "min_object_px": 4}) == 13
    assert labels[1, 1] == 0 and (labels[18:21, 18:22] == 1).all()
