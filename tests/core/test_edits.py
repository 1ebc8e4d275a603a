"""Pixel operations of the labelling tools, checked against brute-force references."""
from collections import deque
from fractions import Fraction

import cv2
import numpy as np
import pytest

from segstudio.core.edits import (
    Diff,
    delete_object,
    fill_polygon,
    fill_region,
    find_region,
    flood_fill,
    paint_disk,
    paint_segment,
    pick_class,
)

# -- references ------------------------------------------------------------------------------------

def capsule_reference(shape, p0, p1, radius):
    """Pixels whose centre is within ``radius`` of segment p0-p1, by exact rational arithmetic."""
    r2 = Fraction(radius) ** 2
    (ay, ax), (by, bx) = p0, p1
    dy, dx = by - ay, bx - ax
    length2 = dy * dy + dx * dx
    out = np.zeros(shape, bool)
    for y in range(shape[0]):
        for x in range(shape[1]):
            t = Fraction(0) if length2 == 0 else Fraction((y - ay) * dy + (x - ax) * dx, length2)
            t = min(max(t, Fraction(0)), Fraction(1))
            qy, qx = ay + t * dy, ax + t * dx
            out[y, x] = (y - qy) ** 2 + (x - qx) ** 2 <= r2
    return out


def region_reference(mask, y, x, connectivity):
    """Breadth-first search over pixels of the seed's class."""
    steps = [(-1, 0), (1, 0), (0, -1), (0, 1)]
    if connectivity == 8:
        steps += [(-1, -1), (-1, 1), (1, -1), (1, 1)]
    cls = mask[y, x]
    seen = np.zeros(mask.shape, bool)
    seen[y, x] = True
    todo = deque([(y, x)])
    while todo:
        cy, cx = todo.popleft()
        for sy, sx in steps:
            ny, nx = cy + sy, cx + sx
            if 0 <= ny < mask.shape[0] and 0 <= nx < mask.shape[1] and not seen[ny, nx] and mask[ny, nx] == cls:
                seen[ny, nx] = True
                todo.append((ny, nx))
    return seen


def blobby_mask(rng, shape, n_classes=3, smooth=9):
    """A mask with irregular regions of several classes, like a prediction."""
    noise = rng.random(shape + (n_classes,)).astype(np.float32)
    noise = cv2.GaussianBlur(noise, (smooth, smooth), 0)
    return np.argmax(noise, axis=2).astype(np.uint8)


def n_components(binary, connectivity):
    n, _ = cv2.connectedComponents(binary.astype(np.uint8), connectivity=connectivity)
    return n - 1


def assert_diff_describes_change(diff, before, after):
    """The diff's rectangle is the tight box of the changed pixels and holds their old/new values."""
    changed = before != after
    ys, xs = np.nonzero(changed)
    assert (diff.y0, diff.x0, diff.y1, diff.x1) == (ys.min(), xs.min(), ys.max() + 1, xs.max() + 1)
    assert diff.shape == (diff.y1 - diff.y0, diff.x1 - diff.x0)
    # Pixels of the box that did not change may be stored as equal placeholders (a fill keeps only its
    # region); every pixel whose stored old and new differ must hold the true values.
    changed_here = changed[diff.region]
    np.testing.assert_array_equal(diff.old[changed_here], before[diff.region][changed_here])
    np.testing.assert_array_equal(diff.new[changed_here], after[diff.region][changed_here])
    stored = diff.old != diff.new
    np.testing.assert_array_equal(stored, changed_here)


# -- brush -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("radius", [0, 1, 2, 3, 4.5, 7])
@pytest.mark.parametrize("centre", [(20, 17), (0, 0), (39, 25), (-3, 10), (12, 42)])
def test_disk_matches_exact_distance(radius, centre):
    mask = np.zeros((40, 40), np.uint8)
    expected = capsule_reference(mask.shape, centre, centre, radius)
    diff = paint_disk(mask, centre[0], centre[1], radius, 5)
    np.testing.assert_array_equal(mask == 5, expected)
    if expected.any():
        assert_diff_describes_change(diff, np.zeros_like(mask), mask)
    else:
        assert diff is None


def test_disk_outside_image_changes_nothing():
    mask = np.ones((20, 20), np.uint8)
    assert paint_disk(mask, -10, 5, 3, 2) is None
    assert paint_disk(mask, 5, 30, 3, 2) is None
    assert (mask == 1).all()


def test_segments_match_exact_distance(rng):
    shape = (36, 44)
    for _ in range(12):
        p0 = tuple(int(v) for v in rng.integers(-5, 45, 2))
        p1 = tuple(int(v) for v in rng.integers(-5, 45, 2))
        radius = float(rng.choice([1, 1.5, 2, 3, 5, 6.5]))
        before = blobby_mask(rng, shape)
        mask = before.copy()
        diff = paint_segment(mask, p0, p1, radius, 7)
        expected = capsule_reference(shape, p0, p1, radius)
        np.testing.assert_array_equal(mask, np.where(expected, 7, before))
        if expected.any():
            assert_diff_describes_change(diff, before, mask)


def test_segment_accepts_float_positions_as_nearest_pixel():
    a = np.zeros((30, 30), np.uint8)
    b = np.zeros((30, 30), np.uint8)
    paint_segment(a, (4.4, 5.6), (20.2, 24.9), 2, 1)
    paint_segment(b, (4, 6), (20, 25), 2, 1)
    np.testing.assert_array_equal(a, b)


def test_fast_stroke_has_no_gaps(rng):
    """Mouse events far apart still give one unbroken stroke."""
    mask = np.zeros((256, 256), np.uint8)
    points = [tuple(int(v) for v in rng.integers(0, 256, 2)) for _ in range(8)]
    for p0, p1 in zip(points, points[1:]):
        paint_segment(mask, p0, p1, 1, 1)
    painted = mask == 1
    assert n_components(painted, 4) == 1
    for p in points:
        assert painted[p]


def test_one_pixel_brush_draws_an_eight_connected_line():
    mask = np.zeros((64, 64), np.uint8)
    p0, p1 = (3, 2), (60, 27)
    paint_segment(mask, p0, p1, 0, 1)
    painted = mask == 1
    assert painted[p0] and painted[p1]
    assert n_components(painted, 8) == 1
    # One pixel per step along the major axis, each close to the true line: a thin line, not a band.
    assert painted.sum() == max(abs(p1[0] - p0[0]), abs(p1[1] - p0[1])) + 1
    near = capsule_reference(mask.shape, p0, p1, Fraction(71, 100))
    assert not (painted & ~near).any()


def test_eraser_paints_background():
    mask = np.full((20, 20), 3, np.uint8)
    diff = paint_segment(mask, (10, 2), (10, 17), 2, 0)
    expected = capsule_reference(mask.shape, (10, 2), (10, 17), 2)
    np.testing.assert_array_equal(mask == 0, expected)
    assert (diff.old[diff.new == 0] == 3).all()


def test_protect_map_is_respected(rng):
    before = blobby_mask(rng, (48, 48))
    protect = rng.random(before.shape) < 0.3
    hand = np.zeros(before.shape, bool)
    mask = before.copy()
    diff = paint_segment(mask, (5, 5), (40, 30), 6, 4, hand=hand, protect=protect)
    footprint = capsule_reference(mask.shape, (5, 5), (40, 30), 6)
    np.testing.assert_array_equal(mask[protect], before[protect])
    assert not hand[protect].any()
    assert (mask[footprint & ~protect] == 4).all()
    np.testing.assert_array_equal(hand, footprint & ~protect)
    assert diff is not None


def test_hand_map_marks_written_pixels_and_is_recorded(rng):
    before = blobby_mask(rng, (32, 32))
    mask = before.copy()
    hand = np.zeros(mask.shape, bool)
    diff = paint_disk(mask, 16, 16, 4, 2, hand=hand)
    footprint = capsule_reference(mask.shape, (16, 16), (16, 16), 4)
    np.testing.assert_array_equal(hand, footprint)
    assert not diff.hand_old.any()
    np.testing.assert_array_equal(diff.hand_new, hand[diff.region])
    assert diff.nbytes == diff.old.nbytes * 2 + diff.hand_old.nbytes * 2
    # Repainting the same class changes nothing at all.
    assert paint_disk(mask, 16, 16, 4, 2, hand=hand) is None


def test_painting_a_predicted_pixel_with_its_own_class_marks_it_as_hand_made():
    mask = np.ones((10, 10), np.uint8)
    hand = np.zeros(mask.shape, bool)
    diff = paint_disk(mask, 5, 5, 1, 1, hand=hand)
    assert diff is not None
    np.testing.assert_array_equal(diff.old, diff.new)
    assert diff.hand_new.sum() == 5 and not diff.hand_old.any()
    assert hand.sum() == 5


def test_without_hand_an_unchanged_paint_gives_no_diff():
    mask = np.ones((10, 10), np.uint8)
    assert paint_disk(mask, 5, 5, 3, 1) is None


def test_uint16_mask_takes_large_class_ids():
    mask = np.zeros((16, 16), np.uint16)
    paint_disk(mask, 8, 8, 2, 300)
    assert (mask == 300).sum() == capsule_reference(mask.shape, (8, 8), (8, 8), 2).sum()


@pytest.mark.parametrize(
    "call",
    [
        lambda m: paint_disk(m, 2, 2, 1, 256),
        lambda m: paint_disk(m, 2, 2, 1, -1),
        lambda m: paint_disk(m, 2, 2, -1, 1),
        lambda m: paint_disk(m, 2, 2, 1, 1, hand=np.zeros((3, 3), bool)),
        lambda m: paint_disk(m, 2, 2, 1, 1, protect=np.zeros(m.shape, np.uint8)),
        lambda m: paint_disk(m.astype(np.int32), 2, 2, 1, 1),
        lambda m: fill_polygon(m, [1, 2, 3], 1),
        lambda m: flood_fill(m, 1, 1, 1, connectivity=6),
    ],
)
def test_bad_arguments_are_rejected_without_touching_the_mask(call):
    mask = np.zeros((8, 8), np.uint8)
    with pytest.raises(ValueError):
        call(mask)
    assert not mask.any()


# -- flood fill ------------------------------------------------------------------------------------

@pytest.mark.parametrize("connectivity", [4, 8])
def test_flood_fill_changes_exactly_the_connected_region(rng, connectivity):
    before = blobby_mask(rng, (60, 70), n_classes=3, smooth=7)
    for _ in range(6):
        y, x = int(rng.integers(0, 60)), int(rng.integers(0, 70))
        mask = before.copy()
        diff = flood_fill(mask, y, x, 9, connectivity=connectivity)
        region = region_reference(before, y, x, connectivity)
        np.testing.assert_array_equal(mask, np.where(region, 9, before))
        assert_diff_describes_change(diff, before, mask)


def test_flood_fill_does_not_leak_through_diagonal_contacts():
    mask = np.zeros((10, 10), np.uint8)
    mask[1:5, 1:5] = 1
    mask[5:9, 5:9] = 1
    flood_fill(mask, 2, 2, 2)
    assert (mask[1:5, 1:5] == 2).all() and (mask[5:9, 5:9] == 1).all()
    flood_fill(mask, 2, 2, 3, connectivity=8)
    assert (mask[1:5, 1:5] == 3).all() and (mask[5:9, 5:9] == 1).all()  # different class now
    mask[1:5, 1:5] = 1
    flood_fill(mask, 2, 2, 3, connectivity=8)
    assert (mask[1:5, 1:5] == 3).all() and (mask[5:9, 5:9] == 3).all()


def test_flood_fill_follows_a_region_far_beyond_the_first_search_window():
    """A corridor that snakes across the whole mask, leaving and re-entering any local window."""
    size = 600
    mask = np.ones((size, size), np.uint8)
    for i, row in enumerate(range(10, size - 10, 20)):
        mask[row:row + 4, :] = 2
        gap = slice(size - 8, size) if i % 2 == 0 else slice(0, 8)
        mask[row:row + 4, gap] = 1
    # A pocket of the same class sealed off by a wall: not part of the clicked region.
    mask[336:348, 200:240] = 2
    mask[338:346, 202:238] = 1
    before = mask.copy()
    _, labels = cv2.connectedComponents((before == 1).astype(np.uint8), connectivity=4)
    diff = flood_fill(mask, 2, 2, 5)
    expected = labels == labels[2, 2]
    np.testing.assert_array_equal(mask, np.where(expected, 5, before))
    assert (mask[338:346, 202:238] == 1).all()
    assert (mask == 5).sum() > size * size // 2
    assert_diff_describes_change(diff, before, mask)


def test_flood_fill_with_hand_and_protect(rng):
    mask = np.zeros((40, 40), np.uint8)
    mask[10:30, 10:30] = 1
    protect = np.zeros(mask.shape, bool)
    protect[15:20, 15:20] = True
    hand = np.zeros(mask.shape, bool)
    diff = flood_fill(mask, 12, 12, 3, hand=hand, protect=protect)
    square = np.zeros(mask.shape, bool)
    square[10:30, 10:30] = True
    np.testing.assert_array_equal(mask == 3, square & ~protect)
    np.testing.assert_array_equal(hand, square & ~protect)
    assert (mask[15:20, 15:20] == 1).all()
    np.testing.assert_array_equal(diff.hand_new, hand[diff.region])
    assert not diff.hand_old.any()


def test_flood_fill_same_class_only_marks_hand():
    mask = np.zeros((12, 12), np.uint8)
    mask[2:6, 2:6] = 1
    assert flood_fill(mask, 3, 3, 1) is None
    hand = np.zeros(mask.shape, bool)
    diff = flood_fill(mask, 3, 3, 1, hand=hand)
    np.testing.assert_array_equal(diff.old, diff.new)
    assert hand.sum() == 16 and hand[2:6, 2:6].all()


def test_flood_fill_outside_image_does_nothing():
    mask = np.zeros((8, 8), np.uint8)
    assert flood_fill(mask, 8, 0, 1) is None
    assert flood_fill(mask, 0, -1, 1) is None
    assert not mask.any()


def test_flood_fill_uint16():
    mask = np.zeros((20, 20), np.uint16)
    mask[5:15, 5:15] = 1000
    flood_fill(mask, 7, 7, 40000)
    assert (mask[5:15, 5:15] == 40000).all() and (mask == 40000).sum() == 100


# -- polygon ---------------------------------------------------------------------------------------

def test_polygon_fills_rectangle_inclusive():
    mask = np.zeros((20, 20), np.uint8)
    diff = fill_polygon(mask, [(2, 3), (10, 3), (10, 8), (2, 8)], 4)
    expected = np.zeros_like(mask)
    expected[3:9, 2:11] = 4
    np.testing.assert_array_equal(mask, expected)
    assert diff.bbox == (3, 2, 9, 11)


def test_concave_polygon_leaves_its_notch():
    mask = np.zeros((30, 30), np.uint8)
    l_shape = [(2, 2), (20, 2), (20, 8), (8, 8), (8, 25), (2, 25)]
    fill_polygon(mask, l_shape, 1)
    assert (mask[2:9, 2:21] == 1).all() and (mask[2:26, 2:9] == 1).all()
    assert not mask[10:26, 10:21].any()


def test_polygon_on_its_bounding_box_matches_drawing_on_the_whole_mask(rng):
    for _ in range(8):
        pts = rng.integers(-15, 45, (7, 2)) if _ % 2 else rng.integers(3, 28, (5, 2))
        before = blobby_mask(rng, (32, 30))
        mask = before.copy()
        hand = np.zeros(mask.shape, bool)
        diff = fill_polygon(mask, pts, 6, hand=hand)
        canvas = np.zeros(mask.shape, np.uint8)
        cv2.fillPoly(canvas, [pts.astype(np.int32)], 1)
        inside = canvas.astype(bool)
        np.testing.assert_array_equal(mask, np.where(inside, 6, before))
        np.testing.assert_array_equal(hand, inside)
        if diff is not None:
            assert_diff_describes_change(diff, before, mask)


def test_degenerate_polygons_change_nothing():
    mask = np.zeros((10, 10), np.uint8)
    assert fill_polygon(mask, [(1, 1), (5, 5)], 1) is None
    assert fill_polygon(mask, [(-9, -9), (-5, -9), (-5, -5)], 1) is None
    assert not mask.any()


# -- delete, eyedropper, diff ----------------------------------------------------------------------

def test_delete_object_removes_only_the_clicked_object():
    mask = np.zeros((30, 30), np.uint8)
    mask[2:10, 2:10] = 1
    mask[2:10, 10:16] = 2  # touching neighbour of another class
    mask[20:25, 20:25] = 1  # another object of the same class
    before = mask.copy()
    hand = np.zeros(mask.shape, bool)
    diff = delete_object(mask, 5, 5, hand=hand)
    assert not mask[2:10, 2:10].any()
    assert (mask[2:10, 10:16] == 2).all() and (mask[20:25, 20:25] == 1).all()
    assert hand.sum() == 64
    assert_diff_describes_change(diff, before, mask)
    assert delete_object(mask, 0, 0) is None
    assert delete_object(mask, 40, 0) is None


def test_pick_class():
    mask = np.zeros((6, 6), np.uint16)
    mask[3, 4] = 517
    assert pick_class(mask, 3, 4) == 517
    assert pick_class(mask, 0, 0) == 0
    with pytest.raises(IndexError):
        pick_class(mask, 6, 0)
    with pytest.raises(IndexError):
        pick_class(mask, 0, -1)


def assert_undo_redo_exact(diff, mask, hand, before, hand_before):
    """Reverting `diff` gives back `before` exactly, and applying it again gives the edited arrays."""
    after, hand_after = mask.copy(), hand.copy()
    diff.revert(mask, hand)
    np.testing.assert_array_equal(mask, before)
    np.testing.assert_array_equal(hand, hand_before)
    diff.apply(mask, hand)
    np.testing.assert_array_equal(mask, after)
    np.testing.assert_array_equal(hand, hand_after)


def test_diff_revert_and_apply_round_trip(rng):
    before = blobby_mask(rng, (40, 40))
    hand_before = rng.random(before.shape) < 0.5
    mask, hand = before.copy(), hand_before.copy()
    diff = paint_segment(mask, (3, 3), (35, 20), 4, 3, hand=hand)
    assert_undo_redo_exact(diff, mask, hand, before, hand_before)


def test_diff_rejects_mismatched_arrays():
    with pytest.raises(ValueError):
        Diff(0, 0, np.zeros((2, 2), np.uint8), np.zeros((2, 3), np.uint8))
    with pytest.raises(ValueError):
        Diff(0, 0, np.zeros((2, 2), np.uint8), np.zeros((2, 2), np.uint8), np.zeros((2, 2), bool))


def test_find_region_says_whether_it_reaches_the_border_and_how_much_it_covers():
    mask = np.zeros((40, 50), np.uint8)
    mask[10:20, 10:20] = 1
    mask[12:18, 12:18] = 0  # a hole
    before = mask.copy()
    hole = find_region(mask, 15, 15)
    assert (hole.top, hole.left, hole.footprint.shape) == (12, 12, (6, 6))
    assert not hole.touches_border and hole.area == 36 and hole.share == pytest.approx(36 / 2000)
    background = find_region(mask, 0, 0)
    assert background.touches_border and background.area == 2000 - 100
    assert find_region(mask, 40, 0) is None
    np.testing.assert_array_equal(mask, before)  # finding changes nothing


def test_image_wide_fill_keeps_its_region_once_and_undoes_exactly(rng):
    mask = blobby_mask(rng, (300, 400), n_classes=3, smooth=9)
    hand = rng.random(mask.shape) < 0.3
    before, hand_before = mask.copy(), hand.copy()
    y, x = (int(v) for v in np.argwhere(mask == mask[0, 0])[0])
    diff = fill_region(mask, find_region(mask, y, x), 7, hand=hand)
    # The region map (and the hand flags it set), not the rectangle's old and new pixels and hand maps.
    assert diff.nbytes <= 2 * diff.footprint.size
    assert_diff_describes_change(diff, before, mask)
    assert_undo_redo_exact(diff, mask, hand, before, hand_before)
