"""The chunked label store of a slide: paint at any zoom into full-resolution chunks, undo, save, reopen."""
import numpy as np
import pytest

from segstudio.core.label_store import CHUNK, LabelStore


@pytest.fixture
def store(tmp_path):
    return LabelStore(6000, 9000, tmp_path / "labels.zarr")


def _disk(shape, cx, cy, r):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r


def test_a_full_resolution_brush_dab_writes_its_disk_into_the_full_resolution_chunk(store):
    diff = store.paint_segment((1000.0, 700.0), (1000.0, 700.0), 6, 2)
    assert diff is not None and len(diff.pieces) == 1
    labels = store.read(680, 980, 40, 40)
    expected = _disk((40, 40), 20, 20, 6)
    assert (labels == 2).sum() == pytest.approx(expected.sum(), rel=0.15)
    assert labels[20, 20] == 2 and labels[0, 0] == 0
    assert set(store.full.chunks) == {(700 // CHUNK, 1000 // CHUNK)}


def test_an_overview_stroke_writes_every_full_resolution_pixel_it_covers_across_chunks(store):
    # At 1/64 zoom a 10-pixel screen brush covers a 640-pixel radius of the slide.
    diff = store.paint_segment((2000.0, 2000.0), (5000.0, 2000.0), 640, 1)
    assert len(diff.pieces) > 10
    band = store.read(1500, 2000, 1000, 3000)
    assert np.all(band[100:900] == 1)  # solid through the middle, every full-resolution pixel
    assert store.read(0, 0, 1000, 9000).max() == 0  # nothing above the stroke
    # The label pyramid shows it at low zoom without reading full resolution.
    level = store.best_level(64)
    ds = store.downsample(level)
    assert level > 0
    assert store.read(2000 // ds, 3000 // ds, 1, 1, level=level)[0, 0] == 1


def test_undo_restores_exactly_and_redo_repaints(store):
    store.paint_segment((300.0, 300.0), (900.0, 300.0), 30, 1)
    before = store.read(0, 0, 1200, 1200).copy()
    diff = store.paint_segment((500.0, 100.0), (500.0, 900.0), 50, 3)
    after = store.read(0, 0, 1200, 1200).copy()
    store.revert(diff)
    assert np.array_equal(store.read(0, 0, 1200, 1200), before)
    store.apply(diff)
    assert np.array_equal(store.read(0, 0, 1200, 1200), after)


def test_a_strokes_segments_merge_into_one_step_that_undoes_the_whole_stroke(store):
    store.paint_segment((200.0, 200.0), (200.0, 200.0), 40, 1)
    before = store.read(0, 0, 1600, 1600).copy()
    stroke = store.paint_segment((100.0, 100.0), (600.0, 120.0), 20, 2)
    path = [(600.0, 120.0), (700.0, 700.0), (150.0, 210.0), (1400.0, 1400.0)]
    for a, b in zip(path, path[1:]):
        store.merge(stroke, store.paint_segment(a, b, 20, 2))
    assert len(stroke.pieces) == len({(p.cy, p.cx) for p in stroke.pieces})  # one piece per chunk
    store.revert(stroke)
    assert np.array_equal(store.read(0, 0, 1600, 1600), before)


def test_erasing_where_nothing_was_painted_changes_nothing(store):
    assert store.paint_segment((50.0, 50.0), (400.0, 50.0), 20, 0) is None
    assert not store.full.chunks and not store.unsaved


def test_a_polygon_fills_its_inside_across_chunks(store):
    diff = store.paint_polygon([(100, 100), (1500, 100), (1500, 1300), (100, 1300)], 4)
    assert diff is not None
    assert np.all(store.read(110, 110, 1180, 1380) == 4)
    assert store.read(1310, 100, 10, 10).max() == 0


def test_save_writes_only_the_changed_chunks_and_a_reopened_store_shows_them(store, tmp_path):
    store.paint_segment((100.0, 100.0), (100.0, 100.0), 10, 1)
    store.paint_segment((8000.0, 5000.0), (8000.0, 5000.0), 10, 2)
    assert store.save() == 2
    store.paint_segment((8000.0, 5000.0), (8000.0, 5000.0), 4, 3)
    assert store.save() == 1  # only the chunk painted since
    assert store.save() == 0
    reopened = LabelStore(6000, 9000, tmp_path / "labels.zarr")
    assert reopened.read(100, 100, 1, 1)[0, 0] == 1
    assert reopened.read(5000, 8000, 1, 1)[0, 0] == 3
    assert reopened.read(5008, 8000, 1, 1)[0, 0] == 2
    level = reopened.best_level(16)
    ds = reopened.downsample(level)
    y, x = 5000 // ds, 8000 // ds
    assert ds > 1 and reopened.read(y, x, 1, 1, level=level)[0, 0] == reopened.read(y * ds, x * ds, 1, 1)[0, 0] > 0


def test_a_chunk_erased_back_to_nothing_leaves_the_disk(store, tmp_path):
    diff = store.paint_segment((100.0, 100.0), (100.0, 100.0), 10, 1)
    store.save()
    assert list((tmp_path / "labels.zarr" / "c").rglob("*"))
    store.revert(diff)
    store.save()
    assert not [p for p in (tmp_path / "labels.zarr" / "c").rglob("*") if p.is_file()]
    assert LabelStore(6000, 9000, tmp_path / "labels.zarr").read(90, 90, 20, 20).max() == 0


def test_labels_of_another_size_are_refused(store, tmp_path):
    store.paint_segment((10.0, 10.0), (10.0, 10.0), 3, 1)
    store.save()
    with pytest.raises(ValueError, match="not the slide's"):
        LabelStore(100, 100, tmp_path / "labels.zarr")


def test_sixteen_bit_labels_hold_more_than_255_classes(tmp_path):
    store = LabelStore(1000, 1000, tmp_path / "wide.zarr", dtype=np.uint16)
    store.paint_segment((500.0, 500.0), (500.0, 500.0), 5, 300)
    store.save()
    assert LabelStore(1000, 1000, tmp_path / "wide.zarr", dtype=np.uint16).read(500, 500, 1, 1)[0, 0] == 300


def test_a_save_writes_the_chunks_as_they_were_when_it_began_and_what_is_painted_meanwhile_saves_next(
        store, tmp_path):
    store.paint_segment((100.0, 100.0), (100.0, 100.0), 10, 1)
    taken = store.snapshot()  # a save begins (on another thread in the app)
    store.paint_segment((100.0, 100.0), (100.0, 100.0), 10, 2)  # painted while it writes
    assert store.write(taken) == 1
    assert LabelStore(6000, 9000, tmp_path / "labels.zarr").read(100, 100, 1, 1)[0, 0] == 1
    assert store.read(100, 100, 1, 1)[0, 0] == 2 and store.unsaved
    assert store.save() == 1
    assert LabelStore(6000, 9000, tmp_path / "labels.zarr").read(100, 100, 1, 1)[0, 0] == 2


def test_a_save_that_fails_keeps_its_chunks_to_save_next_time(store, monkeypatch):
    store.paint_segment((100.0, 100.0), (100.0, 100.0), 10, 1)
    store.paint_segment((8000.0, 5000.0), (8000.0, 5000.0), 10, 2)
    taken = store.snapshot()
    assert not store.unsaved

    class Full:
        def __setitem__(self, key, value):
            raise OSError(28, "No space left on device")

    real, store._array = store._array, Full()
    with pytest.raises(OSError):
        store.write(taken)
    assert store.unsaved
    store._array = real
    assert store.save() == 2


def test_saved_chunks_beyond_the_memory_budget_leave_memory_and_come_back_from_disk(tmp_path):
    folder = tmp_path / "labels.zarr"
    store = LabelStore(4 * CHUNK, 4 * CHUNK, folder, keep_clean_bytes=4 * CHUNK * CHUNK)
    centres = [((cx + 0.5) * CHUNK, (cy + 0.5) * CHUNK) for cy in range(4) for cx in range(4)]
    for value, (x, y) in enumerate(centres, start=1):
        store.paint_segment((x, y), (x, y), 20, value)
    assert len(store.full.chunks) == 16  # nothing unsaved ever leaves memory
    taken = store.snapshot()  # a save begins; what it writes stays until it is on disk
    assert [store.read(int(y), int(x), 1, 1)[0, 0] for x, y in centres] == list(range(1, 17))
    assert len(store.full.chunks) == 16
    assert store.write(taken) == 16
    assert len(store.full.chunks) <= 4  # saved: only the most recently used stay
    for _ in range(2):  # looking over the whole slide reads each chunk back, and memory stays bounded
        assert [store.read(int(y), int(x), 1, 1)[0, 0] for x, y in centres] == list(range(1, 17))
        assert len(store.full.chunks) <= 4
    level = store.levels[1]
    assert level.read(0, 0, level.height, level.width).max() == 16  # the overview keeps every chunk
    x, y = centres[0]  # long gone from memory: painting there again saves and reopens
    store.paint_segment((x, y), (x, y), 5, 99)
    assert store.save() == 1
    again = LabelStore(4 * CHUNK, 4 * CHUNK, folder)
    assert again.read(int(y), int(x), 1, 1)[0, 0] == 99 and again.read(int(y), int(x) + 15, 1, 1)[0, 0] == 1


def test_a_save_while_painting_goes_on_leaves_the_chunks_still_changing_for_the_next(store, monkeypatch):
    clock = [100.0]
    monkeypatch.setattr("segstudio.core.label_store._clock", lambda: clock[0])
    store.paint_segment((100.0, 100.0), (100.0, 100.0), 10, 1)  # behind the brush by now
    clock[0] += 1.0
    store.paint_segment((2000.0, 100.0), (2000.0, 100.0), 10, 1)  # under the brush
    taken = store.snapshot(quiet=0.25)
    assert [(cy, cx) for cy, cx, _chunk in taken] == [(0, 0)]
    store.write(taken)
    assert store.unsaved  # the other follows
    for _ in range(12):  # a brush that stays in one place is written all the same, after a while
        clock[0] += 0.2
        store.paint_segment((2000.0, 100.0), (2000.0, 100.0), 10 + _, 1)
    assert [(cy, cx) for cy, cx, _chunk in store.snapshot(quiet=0.25, at_most=2.0)] == [(0, 2000 // CHUNK)]


def test_a_store_opened_without_its_pyramid_builds_it_later_in_steps_as_at_open(tmp_path):
    # A window opens a slide at once and fills the label pyramid from the saved chunks on another thread.
    folder = tmp_path / "labels.zarr"
    painted = LabelStore(6000, 9000, folder)
    rng = np.random.default_rng(0)
    for cy in range(0, 6000, CHUNK * 2):
        for cx in range(0, 9000, CHUNK * 3):
            painted.put(cy, cx, rng.integers(0, 4, (CHUNK, CHUNK), dtype=np.uint8))
    assert painted.save() > 20
    at_open = LabelStore(6000, 9000, folder)
    later = LabelStore(6000, 9000, folder, build_pyramid=False)
    levels = range(1, len(later.levels))
    assert not later.pyramid_built
    assert not any(later.read(0, 0, 6000 // later.downsample(k), 9000 // later.downsample(k), level=k).any()
                   for k in levels)
    assert later.read(0, 0, 6000, 9000).any()  # full resolution reads the chunks as always
    boxes = []
    assert not later.build_pyramid(built=boxes.append, stop=lambda: len(boxes) == 1, step=4)  # stopped early
    assert len(boxes) == 1 and boxes[0][2] > 0 and boxes[0][3] > 0
    assert later.build_pyramid(built=boxes.append, step=4) and later.pyramid_built
    for k in levels:
        ds = later.downsample(k)
        h, w = -(-6000 // ds), -(-9000 // ds)
        np.testing.assert_array_equal(later.read(0, 0, h, w, level=k), at_open.read(0, 0, h, w, level=k))
    # Every saved chunk was in some step's box.
    for cy, cx in at_open.chunk_keys():
        assert any(b[0] <= cy * CHUNK < b[0] + b[2] and b[1] <= cx * CHUNK < b[1] + b[3] for b in boxes)


def test_painting_while_the_pyramid_is_built_keeps_both_right(tmp_path):
    folder = tmp_path / "labels.zarr"
    painted = LabelStore(6000, 9000, folder)
    painted.put(0, 0, np.full((CHUNK, CHUNK), 2, np.uint8))
    painted.save()
    later = LabelStore(6000, 9000, folder, build_pyramid=False)
    later.paint_segment((100.0, 100.0), (100.0, 100.0), 40, 0)  # an eraser dab on the saved chunk, first
    later.build_pyramid()
    level = later.best_level(4)
    ds = later.downsample(level)
    assert later.read(100 // ds, 100 // ds, 1, 1, level=level)[0, 0] == 0  # the erased pixel, not the saved 2
    assert later.read(400 // ds, 400 // ds, 1, 1, level=level)[0, 0] == 2
