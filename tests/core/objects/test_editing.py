"""Object edits change one object, come back as one Diff, and undo restores mask, hand map and ids exactly."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from segstudio.core.document import Document
from segstudio.core.edits import paint_disk
from segstudio.core.imageio.types import ImageData, ImageMeta
from segstudio.core.objects.editing import delete_object, merge_objects, new_object, split_object


@pytest.fixture
def doc() -> Document:
    meta = ImageMeta(path=__import__("pathlib").Path("slide.png"), format="png", dtype="uint8", bit_depth=8,
                     height=80, width=100, channels=1, pages=1, page=0)
    document = Document(ImageData(np.zeros((80, 100, 1), np.uint8), meta))
    cv2.circle(document.mask, (30, 40), 14, 1, -1)
    cv2.circle(document.mask, (55, 40), 14, 1, -1)  # touches the first
    cv2.circle(document.mask, (88, 10), 6, 1, -1)
    document.find_objects()
    return document


def _state(doc):
    return doc.mask.copy(), doc.hand.copy(), doc.objects.copy()


def _undo_restores(doc, diff, before):
    doc.apply(diff)
    after = _state(doc)
    doc.revert(diff)
    assert all(np.array_equal(a, b) for a, b in zip(_state(doc), before))
    doc.apply(diff)
    assert all(np.array_equal(a, b) for a, b in zip(_state(doc), after))


def test_found_objects_split_the_touching_pair(doc):
    assert doc.objects.max() == 3 and doc.objects[40, 30] != doc.objects[40, 55]


def test_delete_removes_one_object_not_the_cluster(doc):
    before = _state(doc)
    diff = delete_object(doc.objects, doc.mask, doc.hand, 40, 30)
    _undo_restores(doc, diff, before)
    assert doc.mask[40, 30] == 0 and doc.mask[40, 55] == 1
    assert doc.hand[40, 30]  # a deletion is a correction Predict must not undo
    assert diff.shape[0] * diff.shape[1] < 80 * 100 / 4  # the Diff holds the object's box only
    assert delete_object(doc.objects, doc.mask, doc.hand, 2, 2) is None  # a click on background


def test_merge_joins_the_second_into_the_first(doc):
    before = _state(doc)
    first = doc.objects[40, 30]
    diff = merge_objects(doc.objects, doc.mask, doc.hand, (40, 30), (40, 55))
    _undo_restores(doc, diff, before)
    assert doc.objects[40, 55] == first and len(np.unique(doc.objects)) == 3


def test_a_cut_across_an_object_splits_it_and_a_cut_into_it_does_not(doc):
    before = _state(doc)
    assert split_object(doc.objects, doc.mask, doc.hand, (40, 80), (40, 86)) is None  # stops inside
    diff = split_object(doc.objects, doc.mask, doc.hand, (0, 88), (20, 88))
    _undo_restores(doc, diff, before)
    assert doc.objects[10, 84] != doc.objects[10, 92]
    assert np.array_equal(doc.mask, before[0])  # a split changes objects, not classes


def test_a_new_object_takes_a_fresh_id_and_only_background(doc):
    before = _state(doc)
    diff = new_object(doc.objects, doc.mask, doc.hand, [(70, 10), (70, 40)], 3, 1)
    _undo_restores(doc, diff, before)
    assert doc.objects[70, 20] == before[2].max() + 1
    assert doc.mask[70, 20] == 1 and doc.hand[70, 20]
    assert new_object(doc.objects, doc.mask, doc.hand, [(40, 30)], 2, 1) is None  # inside an object


def test_objects_follow_brush_and_eraser_edits(doc):
    # Painting a blob away from everything makes a new object; painting onto one grows it.
    doc.apply(paint_disk(doc.mask.copy(), 70, 80, 4, 1) or _raise())
    lonely = doc.objects[70, 80]
    assert lonely and lonely not in (doc.objects[40, 30], doc.objects[40, 55])
    grow = paint_disk(doc.mask.copy(), 40, 14, 3, 1)
    doc.apply(grow)
    assert doc.objects[40, 14] == doc.objects[40, 30]
    erase = paint_disk(doc.mask.copy(), 70, 80, 6, 0)
    doc.apply(erase)
    assert doc.objects[70, 80] == 0


def _raise():
    raise AssertionError("the edit changed nothing")
