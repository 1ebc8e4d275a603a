"""The Qt adapter over the core document: one undo step per pushed Diff, signals for what changed."""
from pathlib import Path

import numpy as np
import pytest

from segstudio.core.document import Document, ImageStatus
from segstudio.core.edits import paint_disk
from segstudio.core.imageio import ImageData, ImageMeta
from segstudio.gui.documents.document import ImageDocument


@pytest.fixture
def doc(qapp):
    pixels = np.zeros((30, 40, 1), np.uint8)
    meta = ImageMeta(Path("/data/cells.png"), "png", "uint8", 8, 30, 40, 1, 1, 0)
    return ImageDocument(ImageData(pixels, meta))


def record(signal) -> list:
    seen = []
    signal.connect(lambda *args: seen.append(args))
    return seen


def test_the_adapter_shows_the_core_documents_state(doc):
    assert isinstance(doc.model, Document)
    assert doc.mask is doc.model.mask and doc.hand is doc.model.hand and doc.image is doc.model.image
    assert doc.title == "cells.png" and doc.status == ImageStatus.NEW
    doc.model_version = "nuclei-unet/v2"
    assert doc.model.model_version == "nuclei-unet/v2"


def test_a_prediction_diff_is_applied_once_and_undone_as_one_step(doc):
    doc.mask[2:6, 2:6] = 2
    doc.hand[2:6, 2:6] = True
    labels = np.ones(doc.mask.shape, np.uint8)
    labels[20:, :] = 0
    regions = record(doc.mask_changed)

    diff = doc.model.prediction_diff(labels)
    doc.push_diff(diff, "Predict")
    assert doc.undo_stack.count() == 1 and doc.undo_stack.undoText() == "Predict"
    assert (doc.mask[2:6, 2:6] == 2).all() and doc.mask[10, 10] == 1 and doc.mask[25, 10] == 0
    assert regions == [(diff.y0, diff.x0, *diff.shape)]
    assert diff.shape == (20, 40)  # rows 20.. were already background: not stored

    doc.undo_stack.undo()
    assert (doc.mask[2:6, 2:6] == 2).all() and doc.mask[10, 10] == 0 and doc.hand[2:6, 2:6].all()
    doc.undo_stack.redo()
    assert doc.mask[10, 10] == 1 and doc.unsaved


def test_an_edit_the_tool_already_made_is_not_applied_twice(doc):
    diff = paint_disk(doc.mask, 10, 10, 3, 1, hand=doc.hand)
    painted = doc.mask.copy()
    doc.push_diff(diff, "Brush")
    np.testing.assert_array_equal(doc.mask, painted)
    doc.undo_stack.undo()
    assert not doc.mask.any() and not doc.hand.any()


def test_status_and_display_changes_are_signalled(doc):
    statuses = record(doc.status_changed)
    doc.set_status(ImageStatus.EDITED)
    doc.set_status("edited")  # unchanged: no second signal
    assert statuses == [("edited",)] and doc.model.status == ImageStatus.EDITED

    shown = record(doc.display_changed)
    first = doc.display_picture()
    doc.set_display_channels((0,))
    assert shown == [()] and doc.display_channels == (0,) and doc.display_picture() is not first


def test_replacing_the_mask_is_signalled_and_checked(doc):
    replaced = record(doc.mask_replaced)
    wider = doc.mask.astype(np.uint16)
    doc.replace_mask(wider)
    assert doc.mask is wider and replaced == [()]
    with pytest.raises(ValueError):
        doc.replace_mask(np.zeros((3, 3), np.uint8))
