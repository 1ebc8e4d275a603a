"""Undo/redo of bounding-box diffs, with a whole brush stroke (press to release) as one step.

Each step keeps only the rectangle an edit touched, so the memory of the history follows what the
user edited, not the size of the image.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Iterable

import numpy as np

from .edits import Diff

__all__ = ["History", "merge_diffs"]


def merge_diffs(diffs: Iterable[Diff]) -> Diff | None:
    """One Diff equivalent to applying ``diffs`` in order (the segments of one stroke).

    The result covers the union of their rectangles. Where segments overlap, ``old`` keeps the value
    from the earliest segment that covered the pixel (its state before the stroke) and ``new`` the value
    from the latest. Pixels of the union rectangle that no segment covered are unknown here; they are
    stored with old == new, which :meth:`Diff.apply`/:meth:`Diff.revert` never write.
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


class History:
    """Undo and redo stacks of :class:`Diff` steps.

    The brush calls :meth:`begin_stroke` on press, :meth:`record` with each segment's Diff while the
    mouse moves, and :meth:`end_stroke` on release, which merges the segments into one step. One-shot
    edits (fill, polygon, delete) go in with :meth:`push`. At most ``max_steps`` steps are kept, the
    oldest dropped first; ``max_bytes``, when given, also drops the oldest steps while the kept ones
    use more memory than that (the newest step is always kept).
    """

    def __init__(self, max_steps: int = 200, *, max_bytes: int | None = None):
        if int(max_steps) < 1:
            raise ValueError(f"max_steps must be at least 1, got {max_steps}")
        if max_bytes is not None and int(max_bytes) < 0:
            raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
        self.max_steps = int(max_steps)
        self.max_bytes = None if max_bytes is None else int(max_bytes)
        self._undo: deque[Diff] = deque()
        self._redo: list[Diff] = []
        self._stroke: list[Diff] | None = None

    # -- strokes -------------------------------------------------------------------------------
    def begin_stroke(self) -> None:
        """Start collecting segments; a stroke still open (a lost release event) is closed first."""
        if self._stroke is not None:
            self.end_stroke()
        self._stroke = []

    def record(self, diff: Diff | None) -> None:
        """Add one segment's Diff to the open stroke (opening one if needed); None is ignored."""
        if diff is None:
            return
        if self._stroke is None:
            self._stroke = []
        # The mask has already changed, so what the redo stack would re-apply no longer fits it.
        self._redo.clear()
        self._stroke.append(diff)

    def end_stroke(self) -> Diff | None:
        """Close the stroke and store it as one step; returns that step (None if nothing changed)."""
        segments, self._stroke = self._stroke, None
        merged = merge_diffs(segments or ())
        if merged is not None:
            self._push(merged)
        return merged

    @property
    def in_stroke(self) -> bool:
        return self._stroke is not None

    # -- steps ---------------------------------------------------------------------------------
    def push(self, diff: Diff | None) -> None:
        """Store an edit already applied to the mask as its own step; clears the redo stack."""
        if self._stroke is not None:
            self.end_stroke()
        if diff is not None:
            self._push(diff)

    def _push(self, diff: Diff) -> None:
        self._redo.clear()
        self._undo.append(diff)
        while len(self._undo) > self.max_steps:
            self._undo.popleft()
        if self.max_bytes is not None:
            used = sum(d.nbytes for d in self._undo)
            while used > self.max_bytes and len(self._undo) > 1:
                used -= self._undo.popleft().nbytes

    def undo(self, mask: np.ndarray, hand: np.ndarray | None = None) -> Diff | None:
        """Revert the newest step on ``mask`` (and ``hand``); returns it, or None if there is none."""
        if self._stroke is not None:
            self.end_stroke()
        if not self._undo:
            return None
        diff = self._undo.pop()
        diff.revert(mask, hand)
        self._redo.append(diff)
        return diff

    def redo(self, mask: np.ndarray, hand: np.ndarray | None = None) -> Diff | None:
        """Re-apply the step undone last; returns it, or None if there is none."""
        if self._stroke is not None:
            self.end_stroke()
        if not self._redo:
            return None
        diff = self._redo.pop()
        diff.apply(mask, hand)
        self._undo.append(diff)
        return diff

    def clear(self) -> None:
        """Forget every step, e.g. when another image is opened."""
        self._undo.clear()
        self._redo.clear()
        self._stroke = None

    @property
    def can_undo(self) -> bool:
        return bool(self._undo) or bool(self._stroke)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    @property
    def undo_count(self) -> int:
        return len(self._undo) + (1 if self._stroke else 0)

    @property
    def redo_count(self) -> int:
        return len(self._redo)

    @property
    def nbytes(self) -> int:
        """Memory held by all steps, including the segments of a stroke still being drawn."""
        steps = sum(d.nbytes for d in self._undo) + sum(d.nbytes for d in self._redo)
        return steps + sum(d.nbytes for d in self._stroke or ())
