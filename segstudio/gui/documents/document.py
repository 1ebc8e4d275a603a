"""The Qt face of one open image: signals and an undo stack around a core.document.Document.

The state and the rules (what a prediction changes, how a Diff applies) live in the Qt-free
Document, reachable as ``.model``; this adapter tells the widgets what changed and keeps each image's
own QUndoStack, so switching images keeps each image's mask and history.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, QSettings, Signal

from segstudio.core.document import Document, ImageStatus
from segstudio.core.edits import Diff
from segstudio.core.imageio import DisplayPicture, ImageData
from segstudio.core.labels import ClassTable
from segstudio.gui.documents.commands import BudgetedUndoStack, MaskEditCommand
from segstudio.gui.settings import UNDO_BUDGET_KEY

# Qt's default is unlimited; a bound keeps memory predictable while leaving far more than 100 steps.
UNDO_LIMIT = 200
# Memory the undo steps of one image may hold (settings key UNDO_BUDGET_KEY, in MiB). A brush stroke
# holds kilobytes, but one background fill on an 8192 x 8192 slide holds 256 MiB: 1 GiB keeps the last
# four such fills undoable (thousands of strokes) without ten fills taking 2.5 GiB.
UNDO_BUDGET_MIB = 1024.0


def undo_budget_bytes() -> int:
    mib = QSettings().value(UNDO_BUDGET_KEY, UNDO_BUDGET_MIB, type=float)
    return int(max(0.0, float(mib)) * 2**20)


class ImageDocument(QObject):
    """State of one image. Widgets observe it through signals; they never own the data."""

    mask_changed = Signal(int, int, int, int)  # y0, x0, h, w of the region that changed
    mask_replaced = Signal()
    status_changed = Signal(str)
    classes_changed = Signal()
    display_changed = Signal()  # other channels are shown
    objects_found = Signal()  # the instance map was found afresh (not an edit: no undo step)
    notice = Signal(str)  # something the user should read in the status bar

    def __init__(self, image: ImageData, classes: ClassTable | None = None, parent: QObject | None = None, *,
                 model: Document | None = None) -> None:
        """Wrap a new Document for ``image``, or ``model``, a Document made already (off the GUI thread)."""
        super().__init__(parent)
        self.model = model if model is not None else Document(image, classes)
        self.undo_stack = BudgetedUndoStack(undo_budget_bytes(), self)
        self.undo_stack.setUndoLimit(UNDO_LIMIT)
        self.undo_stack.trimmed.connect(self._tell_trimmed)
        self._told_trimmed = False
        # The undo stack's clean state means "the autosave holds exactly this"; why the last save failed.
        self.autosave_error: str | None = None
        # Why this window may not change the image (another window edits it), or None when it may.
        self.read_only: str | None = None

    # --- the document's state, as the widgets have always read and written it ------------------------
    @property
    def image(self) -> ImageData:
        return self.model.image

    @property
    def mask(self) -> np.ndarray:
        return self.model.mask

    @property
    def hand(self) -> np.ndarray:
        return self.model.hand

    @property
    def classes(self) -> ClassTable:
        return self.model.classes

    @classes.setter
    def classes(self, table: ClassTable) -> None:
        self.model.classes = table

    @property
    def model_version(self) -> str | None:
        return self.model.model_version

    @model_version.setter
    def model_version(self, version: str | None) -> None:
        self.model.model_version = version

    @property
    def prediction(self):
        return self.model.prediction

    @prediction.setter
    def prediction(self, result) -> None:
        self.model.prediction = result

    @property
    def display_channels(self) -> tuple[int, ...] | None:
        return self.model.display_channels

    @display_channels.setter
    def display_channels(self, channels: tuple[int, ...] | None) -> None:
        self.model.display_channels = channels

    @property
    def path(self) -> Path:
        return self.model.path

    @property
    def title(self) -> str:
        return self.model.title

    @property
    def status(self) -> ImageStatus:
        return self.model.status

    def set_status(self, status: ImageStatus) -> None:
        status = ImageStatus(status)
        if status != self.model.status:
            self.model.status = status
            self.status_changed.emit(status.value)

    # --- display -------------------------------------------------------------------------------------
    def display_picture(self) -> DisplayPicture:
        return self.model.display_picture()

    def set_display_channels(self, channels: tuple[int, ...] | None) -> None:
        self.model.display_channels = channels
        self.display_changed.emit()

    # --- edits ---------------------------------------------------------------------------------------
    @property
    def unsaved(self) -> bool:
        """Work not yet in the autosave (the undo stack is clean right after a successful save)."""
        return not self.undo_stack.isClean()

    def mark_unsaved(self) -> None:
        """For changes outside the undo stack (the class table): no undo/redo position is clean any more."""
        self.undo_stack.resetClean()

    def _tell_trimmed(self, steps: int, freed: int) -> None:
        if self._told_trimmed:
            return  # once per image: after that the user knows the oldest steps go
        self._told_trimmed = True
        budget = self.undo_stack.budget_bytes / 2**20
        self.notice.emit(f"{self.title}: the oldest {steps} undo step(s) were let go to keep undo within"
                         f" {budget:.0f} MiB of memory; older steps will go the same way.")

    def notify_region(self, y0: int, x0: int, h: int, w: int) -> None:
        self.mask_changed.emit(y0, x0, h, w)

    def push_diff(self, diff: Diff, text: str) -> None:
        """Make ``diff`` one undo step named ``text``, applying it first unless the mask already shows it."""
        if not self.model.holds(diff):
            self.model.apply(diff)
        else:
            self.model.follow_objects(diff)
        self.undo_stack.push(MaskEditCommand(self, diff, text))
        self.notify_region(diff.y0, diff.x0, *diff.shape)

    def replace_mask(self, mask: np.ndarray, hand: np.ndarray | None = None,
                     objects: np.ndarray | None = None) -> None:
        self.model.replace_mask(mask, hand, objects)
        self.mask_replaced.emit()

    def set_objects(self, ids: np.ndarray) -> None:
        """Take a freshly found instance map (Object View, Find Objects Again, an opened project)."""
        self.model.objects = np.ascontiguousarray(ids, dtype=np.uint32)
        self.objects_found.emit()
