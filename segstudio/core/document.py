"""One open image and everything the user made for it, without Qt: mask, hand-painted map, classes, status.

Edits reach the document as bounding-box Diffs (core.edits), so an undo step holds only the rectangle
an edit changed. The predict-merge rule lives here too: pixels the user painted by hand survive a
prediction unless the user asks to replace everything. The GUI wraps a Document in a Qt adapter that
adds signals and an undo stack (gui.documents.document).
"""
from __future__ import annotations

from enum import Enum
from pathlib import Path

import numpy as np

from segstudio.core.edits import Diff
from segstudio.core.imageio import DisplayPicture, ImageData, to_display_picture
from segstudio.core.labels import ClassTable, new_mask
from segstudio.core.objects.editing import ObjectDiff, follow_mask
from segstudio.core.objects.instances import find_instances, from_interior
from segstudio.core.text import printable

Box = tuple[int, int, int, int]  # y0, x0, height, width


class ImageStatus(str, Enum):
    NEW = "new"
    PREDICTED = "predicted"
    EDITED = "edited"
    EXPORTED = "exported"


class Document:
    """The state of one image. ``mask`` and ``hand`` are changed in place by edits and by Diffs."""

    def __init__(self, image: ImageData, classes: ClassTable | None = None) -> None:
        self.image = image
        self.classes = classes if classes is not None else ClassTable.default()
        self.mask = new_mask(image.shape, self.classes)
        self.hand = np.zeros(image.shape, bool)  # pixels the user painted by hand
        self.status = ImageStatus.NEW
        self.model_version: str | None = None  # model that pre-filled the mask
        self.prediction = None  # last prediction result (confidence/uncertainty maps)
        self._display_channels: tuple[int, ...] | None = None
        # The channels Predict feeds the model (core.model_fit); None until chosen, then kept per image.
        self.model_channels: tuple[int, ...] | None = None
        self.model_channels_chosen = False
        self.model_stain = ""  # "he": Predict feeds the hematoxylin separated from the colours
        self._display: DisplayPicture | None = None
        # The instance map (object ids, uint32) once objects were found; class edits keep it in step.
        self.objects: np.ndarray | None = None
        self.pixel_size_um: float | None = image.meta.pixel_size_um

    @property
    def path(self) -> Path:
        return self.image.meta.path

    @property
    def title(self) -> str:
        """The file's name as shown to the user: terminal escapes and undecodable bytes made visible."""
        return printable(self.path.name)

    # --- display ---------------------------------------------------------------------------------------
    @property
    def display_channels(self) -> tuple[int, ...] | None:
        """The image channels shown on screen (None: the first one to three)."""
        return self._display_channels

    @display_channels.setter
    def display_channels(self, channels: tuple[int, ...] | None) -> None:
        self._display_channels = None if channels is None else tuple(channels)
        self._display = None

    def display_picture(self) -> DisplayPicture:
        """The picture of the shown channels, computed once per choice of channels.

        Kept for every open image, not only the shown one: it costs nothing for 8-bit grey (a view and
        a table), one byte per pixel for other single channels and three for colour, while making it
        again takes seconds on a big slide and switching images must be instant.
        """
        if self._display is None:
            self._display = to_display_picture(self.image.pixels, channels=self._display_channels)
        return self._display

    # --- edits -----------------------------------------------------------------------------------------
    def apply(self, diff: Diff) -> Box:
        """Make the change (redo); returns the box that changed."""
        diff.apply(self.mask, self.hand)
        self._objects_follow(diff, diff.apply_ids if isinstance(diff, ObjectDiff) else None)
        return _box(diff)

    def revert(self, diff: Diff) -> Box:
        """Take the change back (undo); returns the box that changed."""
        diff.revert(self.mask, self.hand)
        self._objects_follow(diff, diff.revert_ids if isinstance(diff, ObjectDiff) else None)
        return _box(diff)

    def follow_objects(self, diff: Diff) -> None:
        """Bring the instance map in step with ``diff``, already applied to the mask (the edit tools paint
        first and hand the Diff over afterwards)."""
        self._objects_follow(diff, diff.apply_ids if isinstance(diff, ObjectDiff) else None)

    def find_objects(self, interior: np.ndarray | None = None) -> np.ndarray:
        """Find the objects of the mask again; not an edit. Seeded from ``interior`` (a model's interior map)
        when given, else along the last prediction's boundary map when its model has one (find_instances)."""
        if interior is not None:
            ids = from_interior(self.mask, interior)
        else:
            ids = find_instances(self.mask, getattr(self.prediction, "boundary", None))
        self.objects = np.ascontiguousarray(ids, dtype=np.uint32)
        return self.objects

    def _objects_follow(self, diff: Diff, write_ids) -> None:
        if self.objects is None:
            return
        if write_ids is not None and diff.ids_old is not None:
            write_ids(self.objects)
        else:
            follow_mask(self.objects, self.mask, diff.y0, diff.x0, diff.y1, diff.x1)

    def holds(self, diff: Diff) -> bool:
        """True when the mask (and hand map) already show the diff's new pixels wherever it changes any.

        The edit tools change the mask as the user paints and hand over the Diff afterwards; a
        prediction's Diff arrives before it is applied. This tells the two apart.
        """
        region = diff.region
        changed = diff.old != diff.new
        if not np.array_equal(self.mask[region][changed], diff.new[changed]):
            return False
        if isinstance(diff, ObjectDiff) and self.objects is not None and diff.ids_old is not None:
            if not diff.holds_ids(self.objects):
                return False
        if diff.hand_old is None:
            return True
        hand_changed = diff.hand_old != diff.hand_new
        return np.array_equal(self.hand[region][hand_changed], diff.hand_new[hand_changed])

    def replace_mask(self, mask: np.ndarray, hand: np.ndarray | None = None,
                     objects: np.ndarray | None = None) -> None:
        """Swap in a whole new mask (autosave recovery, a wider mask dtype); not an undoable edit.

        ``objects`` is the instance map saved with it; without one, objects are found again from the new
        mask when asked for."""
        if mask.shape != self.image.shape:
            raise ValueError(f"mask shape {mask.shape} does not match image shape {self.image.shape}")
        if hand is not None and hand.shape != mask.shape:
            raise ValueError(f"hand map shape {hand.shape} does not match mask shape {mask.shape}")
        if objects is not None and objects.shape != mask.shape:
            raise ValueError(f"instance map shape {objects.shape} does not match mask shape {mask.shape}")
        # The canvas draws the mask straight from its buffer, row after row.
        self.mask = np.ascontiguousarray(mask)
        if hand is not None:
            self.hand = hand
        self.objects = None if objects is None else np.ascontiguousarray(objects, dtype=np.uint32)

    # --- prediction ------------------------------------------------------------------------------------
    def prediction_diff(self, labels: np.ndarray, *, replace_all: bool = False) -> Diff | None:
        """The edit that takes a prediction's ``labels`` into the mask, not yet applied.

        Pixels painted by hand keep their class unless ``replace_all``, which also clears the hand map.
        The Diff covers only the bounding box of the pixels whose class or hand flag changes, so an
        undo step after re-running Predict costs what changed, not the whole image. None when the
        prediction changes nothing.
        """
        labels = np.asarray(labels)
        if labels.shape != self.mask.shape:
            raise ValueError(f"labels of shape {labels.shape} do not fit the mask's shape {self.mask.shape}")
        labels = labels.astype(self.mask.dtype, copy=False)
        changed = labels != self.mask
        if replace_all:
            changed |= self.hand
        else:
            changed &= ~self.hand
        rows = np.flatnonzero(changed.any(axis=1))
        if rows.size == 0:
            return None
        cols = np.flatnonzero(changed.any(axis=0))
        y0, x0 = int(rows[0]), int(cols[0])
        region = slice(y0, int(rows[-1]) + 1), slice(x0, int(cols[-1]) + 1)
        old = self.mask[region].copy()
        if replace_all:
            hand_old = self.hand[region].copy()
            return Diff(y0, x0, old, labels[region].copy(), hand_old, np.zeros_like(hand_old))
        # The hand map does not change, so the Diff does not carry it.
        return Diff(y0, x0, old, np.where(self.hand[region], old, labels[region]))


def _box(diff: Diff) -> Box:
    height, width = diff.shape
    return diff.y0, diff.x0, height, width
