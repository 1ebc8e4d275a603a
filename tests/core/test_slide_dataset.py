"""A slide's reviewed regions become dataset patches with their labels, hand map and pixel size; the
slide itself is never an entry, and exporting again replaces the patches it had."""
from __future__ import annotations

import numpy as np
import pytest

from segstudio.core.dataset import export_many, load_entry, load_manifest
from segstudio.core.imageio import Slide
from segstudio.core.label_store import LabelStore
from segstudio.core.labels import ClassTable
from segstudio.core.slide_dataset import PATCH, region_source, reviewed_regions, slide_items
from segstudio.synth.slides import write_pyramid_ome


@pytest.fixture(scope="module")
def slide_file(tmp_path_factory):
    return write_pyramid_ome(tmp_path_factory.mktemp("slide") / "case.ome.tif", 2500, 3000, levels=2,
                             compression="zlib", mpp=0.5)


def _label(labels, hand, y, x, h, w, value=1):
    labels.put(y, x, np.full((h, w), value, np.uint8))
    hand.put(y, x, np.ones((h, w), np.uint8))


def test_only_the_cells_painted_by_hand_are_regions(slide_file):
    with Slide(slide_file) as slide:
        labels, hand = LabelStore(slide.height, slide.width), LabelStore(slide.height, slide.width, pyramid=False)
        assert reviewed_regions(hand) == []
        labels.put(0, 0, np.ones((2500, 3000), np.uint8))  # a prediction everywhere: nobody reviewed it
        assert reviewed_regions(hand) == []
        _label(labels, hand, 1000, 1000, 60, 60)  # straddles four cells
        _label(labels, hand, 2300, 2900, 10, 10)  # the bottom-right cell, cut by the slide's edge
        assert reviewed_regions(hand) == [(0, 0, PATCH, PATCH), (0, PATCH, PATCH, PATCH), (PATCH, 0, PATCH, PATCH),
                                          (PATCH, PATCH, PATCH, PATCH), (2 * PATCH, 2 * PATCH, 452, 952)]


def test_exported_patches_carry_pixels_labels_hand_map_and_pixel_size(slide_file, tmp_path):
    classes = ClassTable.default()
    with Slide(slide_file) as slide:
        labels, hand = LabelStore(slide.height, slide.width), LabelStore(slide.height, slide.width, pyramid=False)
        _label(labels, hand, 100, 1100, 50, 80)
        labels.put(300, 1500, np.ones((20, 20), np.uint8))  # predicted, not corrected: in the patch, not hand
        regions = reviewed_regions(hand)
        assert regions == [(0, PATCH, PATCH, PATCH)]
        export_many(tmp_path / "ds", slide_items(slide, labels, hand, classes, regions), classes)
        (entry,) = load_manifest(tmp_path / "ds")["entries"]
        assert entry["pixel_size_um"] == pytest.approx(0.5)
        assert entry["region"] == {"slide": str(slide_file.resolve()), "x": PATCH, "y": 0, "width": PATCH,
                                   "height": PATCH}
        assert entry["source"] == region_source(slide_file, regions[0])
        pixels, mask, hand_map = load_entry(tmp_path / "ds", entry)
        assert np.array_equal(pixels, slide.read_region(0, PATCH, 0, PATCH, PATCH))
        assert np.array_equal(mask, labels.read(0, PATCH, PATCH, PATCH))
        assert mask[310, 1510 - PATCH] == 1 and not hand_map[310, 1510 - PATCH]
        assert hand_map.sum() == 50 * 80 and hand_map[100, 1100 - PATCH]


def test_exporting_again_replaces_the_patches_and_adds_new_ones(slide_file, tmp_path):
    classes = ClassTable.default()
    with Slide(slide_file) as slide:
        labels, hand = LabelStore(slide.height, slide.width), LabelStore(slide.height, slide.width, pyramid=False)
        _label(labels, hand, 100, 100, 30, 30)
        export_many(tmp_path / "ds", slide_items(slide, labels, hand, classes, reviewed_regions(hand)), classes)
        _label(labels, hand, 200, 200, 30, 30)  # more corrections in the same cell...
        _label(labels, hand, 1500, 100, 30, 30)  # ...and in another
        export_many(tmp_path / "ds", slide_items(slide, labels, hand, classes, reviewed_regions(hand)), classes)
        entries = load_manifest(tmp_path / "ds")["entries"]
        assert sorted((e["region"]["y"], e["region"]["x"]) for e in entries) == [(0, 0), (PATCH, 0)]
        first = next(e for e in entries if e["region"]["y"] == 0)
        assert first["hand_fraction"] == pytest.approx(2 * 900 / PATCH**2)


def test_a_cancelled_export_stops_between_patches(slide_file, tmp_path):
    classes = ClassTable.default()
    with Slide(slide_file) as slide:
        labels, hand = LabelStore(slide.height, slide.width), LabelStore(slide.height, slide.width, pyramid=False)
        _label(labels, hand, 100, 100, 30, 30)
        _label(labels, hand, 1500, 100, 30, 30)
        asked = []
        items = slide_items(slide, labels, hand, classes, reviewed_regions(hand),
                            cancelled=lambda: len(asked) > 0 or asked.append(1))
        assert len(list(items)) == 1


def test_an_export_from_saved_labels_holds_one_patch_of_chunks_at_a_time(slide_file, tmp_path):
    classes = ClassTable.default()
    with Slide(slide_file) as slide:
        labels = LabelStore(slide.height, slide.width, tmp_path / "labels.zarr")
        hand = LabelStore(slide.height, slide.width, tmp_path / "hand.zarr", pyramid=False)
        for y, x in ((100, 100), (100, 1500), (1500, 1500), (2100, 2500)):
            _label(labels, hand, y, x, 30, 30)
        labels.save()
        hand.save()
        labels = LabelStore(slide.height, slide.width, tmp_path / "labels.zarr", pyramid=False)
        hand = LabelStore(slide.height, slide.width, tmp_path / "hand.zarr", pyramid=False)
        regions = reviewed_regions(hand)
        hand.forget_saved()
        held = []
        for item in slide_items(slide, labels, hand, classes, regions, forget=True):
            held.append(len(labels.full.chunks) + len(hand.full.chunks))
            assert item.mask.sum() == 900
        assert len(held) == 4 and max(held) == 0  # each patch's chunks let go once read
