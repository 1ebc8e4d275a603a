import numpy as np

from segstudio.core.review import (
    ReviewQueue,
    UncertaintyGrid,
    image_region_side,
    rank_images,
)


def _map_with_hot_spots() -> np.ndarray:
    """A 512^2 uncertainty map in 128 px regions: one very uncertain region, one somewhat, the rest sure."""
    u = np.zeros((512, 512), np.float16)
    u[256:384, 128:256] = 0.9
    u[0:128, 384:512] = 0.3
    u[400:410, 0:128] = 0.5  # a thin band: the region's mean is 0.5 * 10/128
    return u


def test_regions_are_ranked_by_mean_uncertainty_and_sure_regions_left_out():
    queue = ReviewQueue.from_uncertainty(_map_with_hot_spots(), side=128)
    assert [r.box for r in queue.regions] == [(256, 128, 128, 128), (0, 384, 128, 128), (384, 0, 128, 128)]
    assert abs(queue.regions[0].uncertainty - 0.9) < 1e-3  # float16 map
    assert abs(queue.regions[2].uncertainty - 0.5 * 10 / 128) < 1e-3
    assert queue.total == 3


def test_grid_filled_slab_by_slab_equals_the_whole_map_and_ignores_uncovered_pixels():
    rng = np.random.default_rng(0)
    u = rng.random((700, 900)).astype(np.float32)
    u[:, :100] = -1  # glass: no tile ran there
    whole = UncertaintyGrid(700, 900, 256)
    whole.add(0, 0, u)
    pieces = UncertaintyGrid(700, 900, 256)
    for y in range(0, 700, 97):  # slabs and strips that do not line up with the regions
        for x in (0, 333):
            pieces.add(y, x, u[y:y + 97, x:x + 333] if x == 0 else u[y:y + 97, x:])
    assert np.allclose(whole.sums, pieces.sums) and np.array_equal(whole.counts, pieces.counts)
    assert whole.counts[0, 0] == 256 * 156  # the first 100 columns are not counted
    expected = u[:256, 100:256].mean()
    assert abs(whole.sums[0, 0] / whole.counts[0, 0] - expected) < 1e-6
    corner = next(r for r in whole.regions(0.0) if r.y0 == 512 and r.x0 == 768)
    assert (corner.h, corner.w) == (700 - 512, 900 - 768)  # regions at the edge are clipped to the image


def test_next_moves_to_most_uncertain_unchecked_and_counts_the_one_shown_before():
    queue = ReviewQueue.from_uncertainty(_map_with_hot_spots(), side=128)
    first = queue.next()
    assert first.box == (256, 128, 128, 128) and queue.checked == 0
    second = queue.next()
    assert second.box == (0, 384, 128, 128) and queue.checked == 1
    queue.mark_corrected([queue.regions[2].key])
    assert queue.next() is None  # the third was corrected: nothing left to check
    assert queue.finished and queue.describe() == "Checked 3 of 3 regions (1 corrected)"


def test_marks_survive_saving_and_a_new_prediction(tmp_path):
    queue = ReviewQueue.from_uncertainty(_map_with_hot_spots(), side=128)
    queue.next()
    queue.next()
    path = tmp_path / "review.json"
    queue.save(path)
    again = ReviewQueue.load(path)
    assert again.describe() == "Checked 1 of 3 regions" and again.current.box == (0, 384, 128, 128)
    # Predict again: the region looked at drops in the ranking and stays checked.
    u = _map_with_hot_spots()
    u[256:384, 128:256] = 0.05
    again.update(ReviewQueue.from_uncertainty(u, side=128).regions)
    assert [r.key for r in again.regions] == ["0,384", "256,128", "384,0"]
    assert again.regions[1].checked and again.checked == 1
    assert ReviewQueue.load(tmp_path / "missing.json") is None
    (tmp_path / "bad.json").write_text("{not json")
    assert ReviewQueue.load(tmp_path / "bad.json") is None


def test_images_ranked_by_mean_uncertainty_skipping_visited_and_unpredicted():
    sure, unsure, visited = (ReviewQueue([], m) for m in (0.1, 0.4, 0.9))
    visited.image_checked = True
    assert rank_images({"a": sure, "b": unsure, "c": visited, "d": None}) == ["b", "a"]


def test_region_side_follows_the_image_size():
    assert image_region_side(512, 512) == 128
    assert image_region_side(2048, 1024) == 256
    assert image_region_side(20000, 20000) == 1024
