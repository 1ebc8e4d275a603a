"""Qt undo commands wrapping core.edits diffs, so Edit > Undo/Redo and the clean state are Qt's own."""
from __future__ import annotations

from PySide6.QtGui import QUndoCommand


class MaskEditCommand(QUndoCommand):
    """One user step (a stroke, a fill, a prediction) stored as the bounding-box diff it made.

    The edit has already been applied to the mask when the command is pushed, so the first redo() that
    QUndoStack.push() calls does nothing. ``doc`` is the ImageDocument whose core document (``doc.model``)
    applies and reverts the diff.
    """

    def __init__(self, doc, diff, text: str) -> None:
        super().__init__(text)
        self.doc = doc
        self.diff = diff
        self._applied = True

    def redo(self) -> None:
        if self._applied:
            self._applied = False
            return
        self.doc.notify_region(*self.doc.model.apply(self.diff))

    def undo(self) -> None:
        self.doc.notify_region(*self.doc.model.revert(self.diff))
