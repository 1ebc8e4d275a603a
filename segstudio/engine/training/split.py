"""Which images train a new model version and which are set aside to check it.

One rule, used by the training run (`data.load_training_data`) and by the Fine-tune dialog and the
Training panel before a run starts, so what the window announces is what training does. No torch here:
the window reads it before torch has loaded.

About a fifth of the images are set aside, at least one, and at least one always trains. A dataset folder
already marks some entries "val" by a hash of their pixels (stable as the dataset grows, so scores stay
comparable between versions); that choice is kept while it sets aside about a fifth. Small datasets often
have none marked, or most of them (two of three, say): then the images set aside are chosen by a hash of
their ids, the same ids always giving the same choice. A single image is cut instead: training sees the
first 80% of it, the check the last 20%.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

#: The share of images set aside to check the new version.
HOLDOUT_SHARE = 0.2
#: A dataset's own "val" marks are kept while they set aside at most this share (the hash gives about 20%
#: on large datasets, with some spread).
DATASET_SPLIT_MAX_SHARE = 0.3
#: With a single image, the share of it (along its longer side) held out to check the new version.
HOLDOUT_STRIP = 0.2


def _holdout_score(entry_id: str) -> int:
    # Salted so the choice is independent of the dataset's own split rule (which uses sha256[:8] % 5).
    return int(hashlib.sha256(f"segstudio-holdout:{entry_id}".encode()).hexdigest()[:8], 16)


def holdout_count(images: int) -> int:
    """How many of `images` are set aside: about a fifth, at least one, and never all (none of one)."""
    if images < 2:
        return 0
    return min(images - 1, max(1, round(images * HOLDOUT_SHARE)))


def holdout_split(entry_ids: Sequence[str]) -> set[str]:
    """About a fifth of `entry_ids` (at least one, never all), chosen by a hash of the id."""
    ids = list(dict.fromkeys(entry_ids))
    return set(sorted(ids, key=_holdout_score)[:holdout_count(len(ids))])


@dataclass(frozen=True)
class ValidationPlan:
    """How a fine-tune divides its images (whole images, or a strip of each when there is only one)."""

    images: int
    check_ids: frozenset[str]   # entry ids set aside; empty for "strip"
    source: str                 # "dataset" (the folders' own marks), "holdout" (hash of ids) or "strip"

    @property
    def check_images(self) -> int:
        return self.images if self.source == "strip" else len(self.check_ids)

    @property
    def train_images(self) -> int:
        return self.images if self.source == "strip" else self.images - len(self.check_ids)

    def describe(self) -> str:
        """The plan in the words the dialog and the Training panel show."""
        if self.images == 0:
            return "No images to train on yet."
        if self.source == "strip":
            share = int(HOLDOUT_STRIP * 100)
            what = "the image" if self.images == 1 else f"each of the {self.images} images"
            return (f"{self.images} image{'s' if self.images != 1 else ''}: the new model trains on "
                    f"{100 - share}% of {what} and is checked on the other {share}%, which training never sees.")
        return (f"{self.images} images: {self.train_images} train the new model, {self.check_images} "
                f"{'is' if self.check_images == 1 else 'are'} set aside to check it.")


def plan_validation(entries: Iterable[Mapping]) -> ValidationPlan:
    """The plan for manifest entries (dicts with "id" and, written by segstudio export, "split")."""
    by_id = {str(e["id"]): e for e in entries}
    n = len(by_id)
    if n < 2:
        return ValidationPlan(n, frozenset(), "strip")
    marked = frozenset(i for i, e in by_id.items() if e.get("split") == "val")
    if 1 <= len(marked) <= max(1, round(n * DATASET_SPLIT_MAX_SHARE)) and len(marked) < n:
        return ValidationPlan(n, marked, "dataset")
    return ValidationPlan(n, frozenset(holdout_split(list(by_id))), "holdout")


def plan_for_folders(folders: Iterable[str | Path]) -> ValidationPlan:
    """The plan for dataset folders, read from their manifests only (raises what load_manifest raises)."""
    from segstudio.core.dataset import load_manifest

    return plan_validation(e for folder in folders for e in load_manifest(folder).get("entries", []))


UNCORRECTED_WARNING = (
    "Nobody corrected these masks (no pixel was painted by hand): the new model's score then only measures "
    "how well it agrees with the model that predicted them, not whether it is right."
)


def nobody_corrected(entries: Iterable[Mapping]) -> bool:
    """True when no entry has a hand-painted pixel: every mask is a prediction exported as it was."""
    entries = list(entries)
    return bool(entries) and not any(float(e.get("hand_fraction") or 0.0) > 0 for e in entries)


@dataclass(frozen=True)
class DatasetOverview:
    """What the Fine-tune dialog says before a run: the split, the training image sizes, corrections."""

    plan: ValidationPlan
    train_sizes: tuple[tuple[int, int], ...]   # (height, width) of what trains (80% of each image for "strip")
    uncorrected: bool


def overview_for_folders(folders: Iterable[str | Path]) -> DatasetOverview:
    from segstudio.core.dataset import load_manifest

    entries = list({str(e["id"]): e for folder in folders for e in load_manifest(folder).get("entries", [])}.values())
    plan = plan_validation(entries)
    sizes = []
    for e in entries:
        h, w = int(e.get("height") or 0), int(e.get("width") or 0)
        if plan.source == "strip":
            h, w = (h, round(w * (1 - HOLDOUT_STRIP))) if w >= h else (round(h * (1 - HOLDOUT_STRIP)), w)
        elif str(e["id"]) in plan.check_ids:
            continue
        sizes.append((h, w))
    return DatasetOverview(plan, tuple(sizes), nobody_corrected(entries))
