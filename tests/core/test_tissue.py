"""Tissue found on a slide's overview; label writes that keep hand-painted pixels; done-marks."""
from __future__ import annotations

import numpy as np
import pytest

from segstudio.core.label_store import LabelStore
from segstudio.core.run_marks import RunMarks
from segstudio.core.tissue import TissueMap, tissue_mask
from segstudio.synth.slides import GLASS


def test_stained_tissue_on_glass_is_found_and_blank_glass_is_not():
    overview = np.broadcast_to(GLASS, (200, 300, 3)).copy()
    assert not tissue_mask(overview).any()
    overview[50:120, 80:200] = (226, 150, 190)
    mask = tissue_mask(overview, dilate=0)
    assert mask[50:120, 80:200].all() and mask.sum() == 70 * 120
    tissue = TissueMap(mask, 10.0)
    assert tissue.any_in(500, 800, 100, 100) and not tissue.any_in(1300, 2100, 500, 500)


def test_fluorescence_cells_on_a_dark_background_are_tissue():
    overview = np.full((100, 100, 3), 5, np.uint8)
    overview[20:40, 20:40] = 180
    assert tissue_mask(overview, dilate=0)[20:40, 20:40].all()
    assert not tissue_mask(overview, dilate=0)[60:, 60:].any()


def test_put_keeps_the_marked_pixels_and_updates_the_pyramid(tmp_path):
    store = LabelStore(3000, 3000, tmp_path / "l.zarr")
    keep = np.zeros((600, 700), bool)
    keep[:10] = True
    store.paint_polygon([(400, 300), (500, 300), (500, 305), (400, 305)], 9)
    assert store.put(300, 400, np.full((600, 700), 2, np.uint8), keep)
    got = store.read(300, 400, 600, 700)
    assert (got[:6, :100] == 9).all() and (got[10:] == 2).all()
    assert (store.read(100, 120, 100, 150, level=1) == 2).all()  # the overview shows the prediction
    store.save()
    assert store.forget_saved() > 0 and not store.full.chunks
    assert (LabelStore(3000, 3000, tmp_path / "l.zarr").read(310, 400, 590, 700) == 2).all()


def test_marks_are_trusted_only_with_the_same_settings(tmp_path):
    marks = RunMarks(tmp_path, {"tile": 512})
    marks.mark("0,0")
    assert RunMarks(tmp_path, {"tile": 512}).is_done("0,0")
    again = RunMarks(tmp_path, {"tile": 256})
    assert again.restarted and not again.done


@pytest.mark.parametrize("downsample", [1.0, 3.0, 7.3, 48.828125])
def test_the_tiles_of_a_plan_are_judged_at_once_as_one_by_one(downsample):
    # Prediction asks which of thousands of tiles hold tissue in one call; it must answer as any_in does.
    rng = np.random.default_rng(int(downsample * 10))
    tissue = TissueMap(rng.random((200, 300)) > 0.995, downsample)
    ys = rng.integers(0, int(220 * downsample), 3000)
    xs = rng.integers(0, int(320 * downsample), 3000)
    for h, w in [(512, 512), (100, 37)]:
        together = tissue.any_in_boxes(ys, xs, h, w)
        one_by_one = np.array([tissue.any_in(int(y), int(x), h, w) for y, x in zip(ys, xs)])
        assert together.any() and not together.all()
        np.testing.assert_array_equal(together, one_by_one)
