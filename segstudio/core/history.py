"""Stroke merging: the segments of one brush stroke (press to release) become one bounding-box Diff.

The app's undo stack is Qt's QUndoStack (gui.documents); each of its steps holds one Diff, so the
memory of the history follows what the user edited, not the size of the image.
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from .edits import Diff

__all__ = ["merge_diffs"]


def merge_diffs(diffs: Iterable[Diff | None]) -> Diff | None:
    """One Diff equivalent to applying ``diffs`` in order (the segments of one stroke).

    The result covers the union of their rectangles. Where segments overlap, ``old`` keeps the value
    from the earliest segment that covered the pixel (its state before the stroke) and ``new`` the value
    from the latest. Pixels of the union rectangle that no segment covered are unknown here; they are
    stored with old == new, which :meth:`Diff.apply`/:meth:`Diff.revert` never write. None entries
    (segments that changed nothing) are skipped; the result is None when no segment changed anything.
    """
    diffs = [d for d in diffs if d is not None]
    if not diffs:
        return None
    if len(diffs) == 1:
        return diffs[0]
    with_hand = [d.hand_old is not None for d in diffs]
    if any(with_hand) and not all(with_hand):
        raise ValueError("cannot merge diffs that track the hand-painted map with diffs that do not")
    y0 = min(d.y0 for d in diffs)
    x0 = min(d.x0 for d in diffs)
    y1 = max(d.y1 for d in diffs)
    x1 = max(d.x1 for d in diffs)
    dtype = np.result_type(*(d.old.dtype for d in diffs))
    old = np.zeros((y1 - y0, x1 - x0), dtype)
    new = np.zeros_like(old)
    hand_old = hand_new = None
    if with_hand[0]:
        hand_old = np.zeros(old.shape, np.bool_)
        hand_new = np.zeros(old.shape, np.bool_)

    def place(d: Diff):
        return slice(d.y0 - y0, d.y1 - y0), slice(d.x0 - x0, d.x1 - x0)

    # Later segments overlap earlier ones: writing old in reverse order lets the earliest one win.
    for d in reversed(diffs):
        old[place(d)] = d.old
        if hand_old is not None:
            hand_old[place(d)] = d.hand_old
    for d in diffs:
        new[place(d)] = d.new
        if hand_new is not None:
            hand_new[place(d)] = d.hand_new
    return Diff(y0, x0, old, new, hand_old, hand_new)
