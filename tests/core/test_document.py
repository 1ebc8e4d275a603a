"""The Qt-free document: Diffs apply and revert exactly, and Predict never overwrites hand-painted pixels."""
from pathlib import Path

import numpy as np
import pytest

from segstudio.core.document import Document, ImageStatus
from segstudio.core.edits import paint_disk
from segstudio.core.imageio import ImageData, ImageMeta, to_display_rgb


def make_document(shape=(40, 50), channels=1, dtype=np.uint8, pixels=None) -> Document:
    if pixels is None:
        pixels = np.zeros(shape + (channels,), dtype)
    meta = ImageMeta(Path("/data/slide 1.png"), "png", pixels.dtype.name, pixels.dtype.itemsize * 8,
                     pixels.shape[0], pixels.shape[1], pixels.shape[2], 1, 0)
    return Document(ImageData(pixels, meta))


def painted(doc: Document, rng) -> None:
    """A prediction-like mask with a few strokes painted by hand on top."""
    doc.mask[...] = rng.integers(0, 3, doc.mask.shape)
    for y, x in [(5, 5), (20, 30), (33, 10)]:
        paint_disk(doc.mask, y, x, 3, 2, hand=doc.hand)


def test_a_new_document_is_empty_background_with_nothing_painted_by_hand():
    doc = make_document()
    assert doc.status == ImageStatus.NEW and doc.title == "slide 1.png"
    assert doc.mask.shape == doc.hand.shape == (40, 50)
    assert not doc.mask.any() and not doc.hand.any()
    assert doc.mask.dtype == doc.classes.mask_dtype
    assert doc.model_version is None and doc.prediction is None


def test_hand_painted_pixels_survive_predict(rng):
    doc = make_document()
    painted(doc, rng)
    hand_before, mask_before = doc.hand.copy(), doc.mask.copy()
    labels = np.full(doc.mask.shape, 1, np.int64)  # a model's output type; converted to the mask's

    diff = doc.prediction_diff(labels)
    np.testing.assert_array_equal(doc.mask, mask_before)  # not applied yet
    doc.apply(diff)

    np.testing.assert_array_equal(doc.mask[hand_before], mask_before[hand_before])
    assert (doc.mask[~hand_before] == 1).all()
    np.testing.assert_array_equal(doc.hand, hand_before)
    assert diff.hand_old is None  # the hand map does not change, so the step does not store it
    assert doc.mask.dtype == np.uint8


def test_replace_all_overwrites_hand_pixels_and_clears_the_hand_map(rng):
    doc = make_document()
    painted(doc, rng)
    labels = rng.integers(0, 3, doc.mask.shape).astype(np.uint8)
    doc.apply(doc.prediction_diff(labels, replace_all=True))
    np.testing.assert_array_equal(doc.mask, labels)
    assert not doc.hand.any()


def test_replace_all_clears_hand_flags_even_where_the_class_stays_the_same():
    doc = make_document()
    doc.mask[10:12, 20:23] = 2
    doc.hand[10:12, 20:23] = True
    diff = doc.prediction_diff(doc.mask.copy(), replace_all=True)
    assert (diff.y0, diff.x0, diff.shape) == (10, 20, (2, 3))
    doc.apply(diff)
    assert not doc.hand.any() and (doc.mask[10:12, 20:23] == 2).all()


def test_the_diff_covers_exactly_the_box_of_the_changed_pixels():
    doc = make_document()
    doc.hand[30, 45] = True  # outside the changes and kept: must not widen the box
    labels = doc.mask.copy()
    labels[7, 12] = 1
    labels[19, 4] = 2
    labels[30, 45] = 1  # hand-painted, so it does not change either
    diff = doc.prediction_diff(labels)
    assert (diff.y0, diff.x0, diff.y1, diff.x1) == (7, 4, 20, 13)
    assert diff.nbytes < doc.mask.nbytes / 4


def test_apply_then_revert_restores_mask_and_hand_exactly(rng):
    doc = make_document()
    painted(doc, rng)
    mask_before, hand_before = doc.mask.copy(), doc.hand.copy()
    for replace_all in (False, True):
        labels = rng.integers(0, 4, doc.mask.shape)
        diff = doc.prediction_diff(labels, replace_all=replace_all)
        after = doc.apply(diff)
        assert after == (diff.y0, diff.x0, *diff.shape)
        mask_after, hand_after = doc.mask.copy(), doc.hand.copy()
        assert doc.revert(diff) == after
        np.testing.assert_array_equal(doc.mask, mask_before)
        np.testing.assert_array_equal(doc.hand, hand_before)
        doc.apply(diff)  # redo gives the same result again
        np.testing.assert_array_equal(doc.mask, mask_after)
        np.testing.assert_array_equal(doc.hand, hand_after)
        doc.revert(diff)


def test_a_prediction_that_changes_nothing_gives_no_diff(rng):
    doc = make_document()
    painted(doc, rng)
    assert doc.prediction_diff(doc.mask.copy()) is None
    different_only_under_hand = np.where(doc.hand, 0, doc.mask)
    assert doc.prediction_diff(different_only_under_hand) is None
    empty = make_document()
    assert empty.prediction_diff(np.zeros((40, 50), np.uint8), replace_all=True) is None


def test_labels_of_the_wrong_shape_are_refused():
    doc = make_document()
    with pytest.raises(ValueError, match="shape"):
        doc.prediction_diff(np.zeros((40, 49), np.uint8))


def test_holds_tells_an_applied_diff_from_one_still_to_apply():
    doc = make_document()
    labels = doc.mask.copy()
    labels[3:6, 3:6] = 1
    diff = doc.prediction_diff(labels)
    assert not doc.holds(diff)
    doc.apply(diff)
    assert doc.holds(diff)
    painted_by_tool = paint_disk(doc.mask, 20, 20, 2, 2, hand=doc.hand)  # tools change the mask first
    assert doc.holds(painted_by_tool)


def test_display_follows_the_chosen_channels(rng):
    pixels = rng.integers(0, 4000, (8, 9, 3)).astype(np.uint16)
    doc = make_document(pixels=pixels)
    first = doc.display_picture()
    assert first.pixels.shape == (8, 9, 3) and first.pixels.dtype == np.uint8
    assert doc.display_picture() is first  # computed once
    doc.display_channels = (2,)
    grey = doc.display_picture()
    assert grey is not first and grey.pixels.shape == (8, 9)  # one byte per pixel for one channel


def test_an_8bit_grey_image_is_shown_without_a_copy(rng):
    pixels = rng.integers(0, 60, (8, 9, 1)).astype(np.uint8)
    doc = make_document(pixels=pixels)
    shown = doc.display_picture()
    assert np.shares_memory(shown.pixels, pixels) and shown.grey_levels.shape == (256,)
    # The grey table stretches the dim range over the screen's, as the copied picture did.
    np.testing.assert_array_equal(shown.rgb(), to_display_rgb(pixels))


def test_replace_mask_checks_the_shape():
    doc = make_document()
    with pytest.raises(ValueError, match="does not match image shape"):
        doc.replace_mask(np.zeros((3, 3), np.uint8))
    wider = doc.mask.astype(np.uint16)
    doc.replace_mask(wider)
    assert doc.mask is wider
