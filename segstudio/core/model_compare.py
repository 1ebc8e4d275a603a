"""Which of two models' predictions needed fewer corrections: counted against the user's own mask.

The user's mask (after their corrections) is the answer. For each model, the pixels where its
prediction differs from that mask are the pixels the user changed after that model's pre-fill, or
would have had to change had they started from it. Fewer is better. Nothing here changes a mask.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Corrections:
    """How far one model's prediction is from the user's mask."""

    model: str  # as shown to the user, e.g. "nuclei-unet v1"
    changed: int  # pixels whose class differs between the prediction and the mask
    total: int  # pixels in the image

    @property
    def share(self) -> float:
        return self.changed / self.total if self.total else 0.0


def corrections(model: str, mask: np.ndarray, labels: np.ndarray) -> Corrections:
    """Count the pixels where ``labels`` (a model's prediction) differ from ``mask``."""
    mask, labels = np.asarray(mask), np.asarray(labels)
    if mask.shape != labels.shape:
        raise ValueError(f"the prediction's shape {labels.shape} does not match the mask's {mask.shape}")
    return Corrections(model, int(np.count_nonzero(mask != labels)), int(mask.size))


def describe(rows: list[Corrections], hand_pixels: int) -> list[str]:
    """One plain sentence per model, then which needed fewer corrections (or that they tie)."""
    lines = [f"{row.model}: your mask differs from its prediction in {row.changed:,} "
             f"{'pixel' if row.changed == 1 else 'pixels'} ({100 * row.share:.2f}%)." for row in rows]
    if len(rows) == 2:
        first, second = rows
        if first.changed == second.changed:
            lines.append("Both needed the same number of corrections.")
        else:
            best, other = (first, second) if first.changed < second.changed else (second, first)
            lines.append(f"{best.model} needed fewer corrections ({other.changed - best.changed:,} pixels fewer).")
    if hand_pixels == 0:
        lines.append("You have not corrected this image by hand yet: the counts compare each prediction with "
                     "the mask as it is now.")
    return lines
