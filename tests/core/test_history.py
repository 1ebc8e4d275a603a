"""Stroke merging: one stroke is one step, undo restores exact pixels, memory follows the edit."""
import cv2
import numpy as np
import pytest

from segstudio.core.edits import Diff, delete_object, fill_polygon, flood_fill, paint_disk, paint_segment
from segstudio.core.history import merge_diffs


def predicted_mask(rng, shape, n_classes=4):
    noise = cv2.GaussianBlur(rng.random(shape + (n_classes,)).astype(np.float32), (7, 7), 0)
    return np.argmax(noise, axis=2).astype(np.uint8)


def random_stroke(rng, mask, hand, protect=None):
    """A press-drag-release of 1..10 mouse events, sometimes doubling back over itself, as one Diff."""
    shape = mask.shape
    value = int(rng.integers(0, 4))
    radius = float(rng.choice([0, 1, 2, 3.5, 6]))
    point = rng.integers(-3, max(shape) + 3, 2)
    segments = []
    for _ in range(int(rng.integers(1, 11))):
        step = rng.integers(-14, 15, 2)
        nxt = point + step
        segments.append(paint_segment(mask, point, nxt, radius, value, hand=hand, protect=protect))
        if rng.random() < 0.3:  # scribble back over the same pixels
            segments.append(paint_segment(mask, nxt, point, radius, value, hand=hand, protect=protect))
        point = nxt
    return merge_diffs(segments)


def random_one_shot(rng, mask, hand):
    y, x = (int(v) for v in rng.integers(0, mask.shape[0], 2))
    kind = rng.integers(0, 3)
    if kind == 0:
        return flood_fill(mask, y, x, int(rng.integers(0, 4)), hand=hand)
    if kind == 1:
        return fill_polygon(mask, rng.integers(-5, mask.shape[0] + 5, (5, 2)), int(rng.integers(0, 4)), hand=hand)
    return delete_object(mask, y, x, hand=hand)


def test_random_edits_undo_and_redo_exactly(rng):
    """Merged strokes and one-shot edits, kept as steps the way an undo stack keeps them, undo and redo
    to exactly the pixels of every recorded state, in any order of undo and redo."""
    mask = predicted_mask(rng, (64, 64))
    hand = rng.random(mask.shape) < 0.2
    protect = rng.random(mask.shape) < 0.1
    steps = []
    states = [(mask.copy(), hand.copy())]
    for i in range(40):
        if i % 5 == 4:
            step = random_one_shot(rng, mask, hand)
        else:
            step = random_stroke(rng, mask, hand, protect if i % 3 == 0 else None)
        if step is not None:
            steps.append(step)
            states.append((mask.copy(), hand.copy()))

    for step, (expected_mask, expected_hand) in zip(reversed(steps), reversed(states[:-1])):
        step.revert(mask, hand)
        np.testing.assert_array_equal(mask, expected_mask)
        np.testing.assert_array_equal(hand, expected_hand)

    for step, (expected_mask, expected_hand) in zip(steps, states[1:]):
        step.apply(mask, hand)
        np.testing.assert_array_equal(mask, expected_mask)
        np.testing.assert_array_equal(hand, expected_hand)

    # A random walk of undo/redo always lands on a recorded state.
    position = len(steps)
    for _ in range(60):
        if rng.random() < 0.5 and position > 0:
            position -= 1
            steps[position].revert(mask, hand)
        elif position < len(steps):
            steps[position].apply(mask, hand)
            position += 1
        np.testing.assert_array_equal(mask, states[position][0])
        np.testing.assert_array_equal(hand, states[position][1])


def test_one_stroke_is_one_step_and_undo_restores_the_pixels_before_the_press(rng):
    before = predicted_mask(rng, (80, 80))
    hand_before = np.zeros(before.shape, bool)
    mask, hand = before.copy(), hand_before.copy()
    points = [(10, 10), (30, 50), (12, 14), (60, 70), (10, 12), (40, 40)]  # crosses itself repeatedly
    merged = merge_diffs(paint_segment(mask, p0, p1, 4, 1 + value_step % 3, hand=hand)
                         for value_step, (p0, p1) in enumerate(zip(points, points[1:])))

    changed = (before != mask) | (hand_before != hand)
    ys, xs = np.nonzero(changed)
    assert merged.y0 <= ys.min() and merged.x0 <= xs.min() and merged.y1 > ys.max() and merged.x1 > xs.max()
    box_changed = changed[merged.region]
    np.testing.assert_array_equal(merged.old[box_changed], before[merged.region][box_changed])
    np.testing.assert_array_equal(merged.new[box_changed], mask[merged.region][box_changed])

    merged.revert(mask, hand)
    np.testing.assert_array_equal(mask, before)
    np.testing.assert_array_equal(hand, hand_before)


def test_merge_keeps_the_earliest_old_and_the_latest_new():
    mask = np.zeros((10, 10), np.uint8)
    first = paint_disk(mask, 5, 5, 2, 1)
    second = paint_disk(mask, 5, 6, 2, 2)
    third = paint_disk(mask, 5, 5, 0, 3)
    merged = merge_diffs([first, second, third])
    assert merged.old[5 - merged.y0, 5 - merged.x0] == 0
    assert merged.new[5 - merged.y0, 5 - merged.x0] == 3
    merged.revert(mask)
    assert not mask.any()


def test_pixels_a_diagonal_stroke_never_reached_survive_undo_and_redo():
    mask = np.full((60, 60), 2, np.uint8)
    mask[5, 50] = 3  # inside the stroke's bounding box, far from the stroke itself
    merged = merge_diffs(paint_segment(mask, (i, i), (i + 5, i + 5), 1, 1) for i in range(0, 50, 5))
    assert merged.y0 <= 5 < merged.y1 and merged.x0 <= 50 < merged.x1
    merged.revert(mask)
    assert (mask[np.arange(60), np.arange(60)] == 2).all() and mask[5, 50] == 3
    merged.apply(mask)
    assert (mask[np.arange(51), np.arange(51)] == 1).all() and mask[5, 50] == 3


def test_empty_and_unchanged_strokes_add_no_step():
    mask = np.ones((10, 10), np.uint8)
    assert merge_diffs([]) is None
    unchanged = paint_disk(mask, 5, 5, 2, 1)  # same class, no hand map: no change
    assert unchanged is None
    assert merge_diffs([unchanged, None]) is None


def test_small_stroke_on_a_big_mask_costs_memory_of_the_stroke_only():
    mask = np.zeros((4096, 4096), np.uint8)
    hand = np.zeros(mask.shape, bool)
    points = [(2000, 2000), (2010, 2012), (2018, 2020), (2030, 2025)]
    segments = [paint_segment(mask, p0, p1, 8, 1, hand=hand) for p0, p1 in zip(points, points[1:])]
    during = sum(d.nbytes for d in segments)
    merged = merge_diffs(segments)
    assert merged.shape == (30 + 17, 25 + 17)
    assert max(during, merged.nbytes) < mask.nbytes / 1000
    merged.revert(mask, hand)
    assert not mask.any() and not hand.any()


def test_merging_needs_consistent_hand_tracking():
    mask = np.zeros((10, 10), np.uint8)
    hand = np.zeros(mask.shape, bool)
    with_hand = paint_disk(mask, 3, 3, 1, 1, hand=hand)
    without = paint_disk(mask, 6, 6, 1, 2)
    with pytest.raises(ValueError):
        merge_diffs([with_hand, without])


def test_single_segment_stroke_is_stored_as_is():
    mask = np.zeros((10, 10), np.uint8)
    diff = paint_disk(mask, 4, 4, 2, 1)
    assert merge_diffs([diff]) is diff
    assert isinstance(diff, Diff)
