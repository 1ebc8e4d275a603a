"""One open image and everything the user made for it: mask, classes, hand-painted map and undo history.

Each open image keeps its own document, so switching images keeps each image's mask and history.
"""
from __future__ import annotations

from enum import Enum
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QUndoStack

from segstudio.core.imageio import ImageData, to_display_rgb
from segstudio.core.labels import ClassTable, new_mask


# Qt's default is unlimited; a bound keeps memory predictable while leaving far more than 100 steps.
UNDO_LIMIT = 200


class ImageStatus(str, Enum):
    NEW = "new"
    PREDICTED = "predicted"
    EDITED = "edited"
    EXPORTED = "exported"


class ImageDocument(QObject):
    """State of one image. Widgets observe it through signals; they never own the data."""

    mask_changed = Signal(int, int, int, int)  # y0, x0, h, w of the region that changed
    mask_replaced = Signal()
    status_changed = Signal(str)
    classes_changed = Signal()
    display_changed = Signal()  # other channels are shown

    def __init__(self, image: ImageData, classes: ClassTable | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.image = image
        self.classes = classes if classes is not None else ClassTable.default()
        self.mask = new_mask(image.shape, self.classes)
        self.hand = np.zeros(image.shape, bool)  # pixels the user painted by hand
        self.undo_stack = QUndoStack(self)
        self.undo_stack.setUndoLimit(UNDO_LIMIT)
        # The undo stack's clean state means "the autosave holds exactly this"; why the last save failed.
        self.autosave_error: str | None = None
        self.display_channels: tuple[int, ...] | None = None
        self._display_rgb: np.ndarray | None = None
        self._status = ImageStatus.NEW
        self.model_version: str | None = None  # model that pre-filled the mask
        self.prediction = None  # last prediction result (confidence/uncertainty maps)

    @property
    def path(self) -> Path:
        return self.image.meta.path

    @property
    def title(self) -> str:
        return self.path.name

    @property
    def status(self) -> ImageStatus:
        return self._status

    def set_status(self, status: ImageStatus) -> None:
        if status != self._status:
            self._status = ImageStatus(status)
            self.status_changed.emit(self._status.value)

    def display_rgb(self) -> np.ndarray:
        if self._display_rgb is None:
            self._display_rgb = to_display_rgb(self.image.pixels, channels=self.display_channels)
        return self._display_rgb

    def set_display_channels(self, channels: tuple[int, ...] | None) -> None:
        self.display_channels = channels
        self._display_rgb = None
        self.display_changed.emit()

    @property
    def unsaved(self) -> bool:
        """Work not yet in the autosave (the undo stack is clean right after a successful save)."""
        return not self.undo_stack.isClean()

    def mark_unsaved(self) -> None:
        """For changes outside the undo stack (the class table): no undo/redo position is clean any more."""
        self.undo_stack.resetClean()

    def notify_region(self, y0: int, x0: int, h: int, w: int) -> None:
        self.mask_changed.emit(y0, x0, h, w)

    def replace_mask(self, mask: np.ndarray, hand: np.ndarray | None = None) -> None:
        if mask.shape != self.image.shape:
            raise ValueError(f"mask shape {mask.shape} does not match image shape {self.image.shape}")
        self.mask = mask
        if hand is not None:
            self.hand = hand
        self.mask_replaced.emit()
