"""Undo/redo: one stroke is one step, undo restores exact pixels, memory follows the edit."""
import cv2
import numpy as np
import pytest

from segstudio.core.edits import Diff, delete_object, fill_polygon, flood_fill, paint_disk, paint_segment
from segstudio.core.history import History, merge_diffs


def predicted_mask(rng, shape, n_classes=4):
    noise = cv2.GaussianBlur(rng.random(shape + (n_classes,)).astype(np.float32), (7, 7), 0)
    return np.argmax(noise, axis=2).astype(np.uint8)


def random_stroke(rng, history, mask, hand, protect=None):
    """A press-drag-release of 1..10 mouse events, sometimes doubling back over itself."""
    shape = mask.shape
    value = int(rng.integers(0, 4))
    radius = float(rng.choice([0, 1, 2, 3.5, 6]))
    point = rng.integers(-3, max(shape) + 3, 2)
    history.begin_stroke()
    for _ in range(int(rng.integers(1, 11))):
        step = rng.integers(-14, 15, 2)
        nxt = point + step
        history.record(paint_segment(mask, point, nxt, radius, value, hand=hand, protect=protect))
        if rng.random() < 0.3:  # scribble back over the same pixels
            history.record(paint_segment(mask, nxt, point, radius, value, hand=hand, protect=protect))
        point = nxt
    return history.end_stroke()


def random_one_shot(rng, history, mask, hand):
    y, x = (int(v) for v in rng.integers(0, mask.shape[0], 2))
    kind = rng.integers(0, 3)
    if kind == 0:
        diff = flood_fill(mask, y, x, int(rng.integers(0, 4)), hand=hand)
    elif kind == 1:
        diff = fill_polygon(mask, rng.integers(-5, mask.shape[0] + 5, (5, 2)), int(rng.integers(0, 4)), hand=hand)
    else:
        diff = delete_object(mask, y, x, hand=hand)
    history.push(diff)
    return diff


def test_random_edits_undo_and_redo_exactly(rng):
    mask = predicted_mask(rng, (64, 64))
    hand = rng.random(mask.shape) < 0.2
    protect = rng.random(mask.shape) < 0.1
    history = History()
    states = [(mask.copy(), hand.copy())]
    for i in range(40):
        if i % 5 == 4:
            step = random_one_shot(rng, history, mask, hand)
        else:
            step = random_stroke(rng, history, mask, hand, protect if i % 3 == 0 else None)
        if step is not None:
            states.append((mask.copy(), hand.copy()))
    assert history.undo_count == len(states) - 1

    for expected_mask, expected_hand in reversed(states[:-1]):
        assert history.undo(mask, hand) is not None
        np.testing.assert_array_equal(mask, expected_mask)
        np.testing.assert_array_equal(hand, expected_hand)
    assert not history.can_undo and history.undo(mask, hand) is None

    for expected_mask, expected_hand in states[1:]:
        assert history.redo(mask, hand) is not None
        np.testing.assert_array_equal(mask, expected_mask)
        np.testing.assert_array_equal(hand, expected_hand)
    assert not history.can_redo and history.redo(mask, hand) is None

    # A random walk of undo/redo always lands on a recorded state.
    position = len(states) - 1
    for _ in range(60):
        if rng.random() < 0.5 and history.can_undo:
            history.undo(mask, hand)
            position -= 1
        elif history.can_redo:
            history.redo(mask, hand)
            position += 1
        np.testing.assert_array_equal(mask, states[position][0])
        np.testing.assert_array_equal(hand, states[position][1])


def test_one_stroke_is_one_step_and_undo_restores_the_pixels_before_the_press(rng):
    before = predicted_mask(rng, (80, 80))
    hand_before = np.zeros(before.shape, bool)
    mask, hand = before.copy(), hand_before.copy()
    history = History()
    history.begin_stroke()
    points = [(10, 10), (30, 50), (12, 14), (60, 70), (10, 12), (40, 40)]  # crosses itself repeatedly
    for value_step, (p0, p1) in enumerate(zip(points, points[1:])):
        history.record(paint_segment(mask, p0, p1, 4, 1 + value_step % 3, hand=hand))
    merged = history.end_stroke()
    assert history.undo_count == 1

    changed = (before != mask) | (hand_before != hand)
    ys, xs = np.nonzero(changed)
    assert merged.y0 <= ys.min() and merged.x0 <= xs.min() and merged.y1 > ys.max() and merged.x1 > xs.max()
    box_changed = changed[merged.region]
    np.testing.assert_array_equal(merged.old[box_changed], before[merged.region][box_changed])
    np.testing.assert_array_equal(merged.new[box_changed], mask[merged.region][box_changed])

    assert history.undo(mask, hand) is merged
    np.testing.assert_array_equal(mask, before)
    np.testing.assert_array_equal(hand, hand_before)
    assert not history.can_undo and history.can_redo


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
    history = History()
    history.begin_stroke()
    for i in range(0, 50, 5):
        history.record(paint_segment(mask, (i, i), (i + 5, i + 5), 1, 1))
    merged = history.end_stroke()
    assert merged.y0 <= 5 < merged.y1 and merged.x0 <= 50 < merged.x1
    history.undo(mask)
    assert (mask[np.arange(60), np.arange(60)] == 2).all() and mask[5, 50] == 3
    history.redo(mask)
    assert (mask[np.arange(51), np.arange(51)] == 1).all() and mask[5, 50] == 3


def test_more_than_a_hundred_steps_then_the_oldest_are_dropped(rng):
    mask = np.zeros((32, 32), np.uint8)
    history = History()
    snapshots = [mask.copy()]
    for i in range(230):
        y, x = (int(v) for v in rng.integers(0, 32, 2))
        history.begin_stroke()
        history.record(paint_disk(mask, y, x, 2, 1 + i % 250))
        assert history.end_stroke() is not None
        snapshots.append(mask.copy())
    assert history.undo_count == 200
    for k in range(200):
        history.undo(mask)
        np.testing.assert_array_equal(mask, snapshots[229 - k])
    assert not history.can_undo
    np.testing.assert_array_equal(mask, snapshots[30])


def test_a_new_edit_clears_redo(rng):
    mask = np.zeros((20, 20), np.uint8)
    history = History()
    history.push(paint_disk(mask, 5, 5, 2, 1))
    history.push(paint_disk(mask, 12, 12, 2, 2))
    history.undo(mask)
    assert history.can_redo
    history.push(paint_disk(mask, 15, 3, 2, 3))
    assert not history.can_redo and history.redo(mask) is None

    history.undo(mask)
    assert history.can_redo
    history.begin_stroke()
    history.record(paint_disk(mask, 3, 15, 2, 1))
    assert not history.can_redo  # the mask already changed under the redo step
    history.end_stroke()
    assert history.undo_count == 2


def test_undo_during_a_stroke_closes_it_first():
    mask = np.zeros((20, 20), np.uint8)
    history = History()
    history.begin_stroke()
    history.record(paint_segment(mask, (2, 2), (10, 10), 1, 1))
    history.record(paint_segment(mask, (10, 10), (17, 3), 1, 1))
    assert history.in_stroke and history.can_undo
    history.undo(mask)
    assert not mask.any() and not history.in_stroke


def test_empty_and_unchanged_strokes_add_no_step():
    mask = np.ones((10, 10), np.uint8)
    history = History()
    history.begin_stroke()
    assert history.end_stroke() is None
    history.begin_stroke()
    history.record(paint_disk(mask, 5, 5, 2, 1))  # same class, no hand map: no change
    assert history.end_stroke() is None
    history.push(None)
    assert not history.can_undo and history.nbytes == 0


def test_small_stroke_on_a_big_mask_costs_memory_of_the_stroke_only():
    mask = np.zeros((4096, 4096), np.uint8)
    hand = np.zeros(mask.shape, bool)
    history = History()
    history.begin_stroke()
    points = [(2000, 2000), (2010, 2012), (2018, 2020), (2030, 2025)]
    for p0, p1 in zip(points, points[1:]):
        history.record(paint_segment(mask, p0, p1, 8, 1, hand=hand))
    during = history.nbytes
    merged = history.end_stroke()
    assert 0 < history.nbytes == merged.nbytes
    assert merged.shape == (30 + 17, 25 + 17)
    assert max(during, history.nbytes) < mask.nbytes / 1000
    history.undo(mask, hand)
    assert not mask.any() and not hand.any()
    assert history.nbytes == merged.nbytes  # kept for redo


def test_nbytes_tracks_every_kept_step():
    mask = np.zeros((50, 50), np.uint8)
    history = History(max_steps=3)
    diffs = []
    for i in range(5):
        diffs.append(paint_disk(mask, 10 * i + 5, 10 * i + 5, 1 + i, 1))
        history.push(diffs[-1])
    assert history.undo_count == 3
    assert history.nbytes == sum(d.nbytes for d in diffs[-3:])
    history.clear()
    assert history.nbytes == 0 and not history.can_undo


def test_byte_budget_drops_oldest_but_keeps_the_newest():
    mask = np.zeros((100, 100), np.uint8)
    small = paint_disk(mask, 10, 10, 2, 1)
    big = fill_polygon(mask, [(0, 0), (99, 0), (99, 99), (0, 99)], 2)
    history = History(max_bytes=big.nbytes - 1)
    history.push(small)
    history.push(big)
    assert history.undo_count == 1 and history.nbytes == big.nbytes


def test_merging_needs_consistent_hand_tracking():
    mask = np.zeros((10, 10), np.uint8)
    hand = np.zeros(mask.shape, bool)
    with_hand = paint_disk(mask, 3, 3, 1, 1, hand=hand)
    without = paint_disk(mask, 6, 6, 1, 2)
    with pytest.raises(ValueError):
        merge_diffs([with_hand, without])


def test_max_steps_must_be_positive():
    with pytest.raises(ValueError):
        History(max_steps=0)


def test_single_segment_stroke_is_stored_as_is():
    mask = np.zeros((10, 10), np.uint8)
    history = History()
    history.begin_stroke()
    diff = paint_disk(mask, 4, 4, 2, 1)
    history.record(diff)
    assert history.end_stroke() is diff
    assert isinstance(diff, Diff)
