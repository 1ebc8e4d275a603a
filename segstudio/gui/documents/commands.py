"""Qt undo commands wrapping core.edits diffs, so Edit > Undo/Redo and the clean state are Qt's own, and
an undo stack that keeps the memory its steps hold under a budget."""
from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtGui import QUndoCommand, QUndoStack


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
        self.silent = False  # while an undo stack is rebuilt: the mask already is where the stack says

    @property
    def nbytes(self) -> int:
        """Memory this step holds: the old and new pixels of its box (and of the hand map)."""
        return self.diff.nbytes

    def redo(self) -> None:
        if self._applied or self.silent:
            self._applied = False
            return
        self.doc.notify_region(*self.doc.model.apply(self.diff))

    def undo(self) -> None:
        if not self.silent:
            self.doc.notify_region(*self.doc.model.revert(self.diff))


class BudgetedUndoStack(QUndoStack):
    """A QUndoStack whose steps together hold at most ``budget_bytes``; the oldest steps go first.

    QUndoStack bounds the number of steps only, and only while it is empty (setUndoLimit), but one fill
    on an 8192 x 8192 slide holds 256 MiB, so a count says little about memory. After each push the stack
    adds up what its MaskEditCommands hold and, when over budget, rebuilds itself without the oldest steps
    (the newest step always stays undoable): the kept diffs go into new commands, pushed silently, and the
    current and clean positions are put back. ``trimmed`` tells how many steps went and how many bytes.
    """

    trimmed = Signal(int, int)

    def __init__(self, budget_bytes: int, parent=None) -> None:
        super().__init__(parent)
        self.budget_bytes = int(budget_bytes)

    def held_bytes(self) -> int:
        return sum(getattr(self.command(i), "nbytes", 0) for i in range(self.count()))

    def push(self, command: QUndoCommand) -> None:
        super().push(command)
        if self.held_bytes() > self.budget_bytes:
            self._drop_oldest()

    def _drop_oldest(self) -> None:
        commands = [self.command(i) for i in range(self.count())]
        if not all(isinstance(c, MaskEditCommand) for c in commands):
            return  # only mask edits can be rebuilt from what they hold
        total, drop, done = sum(c.nbytes for c in commands), 0, self.index()
        while total > self.budget_bytes and drop < done - 1:
            total -= commands[drop].nbytes
            drop += 1
        if drop == 0:
            return
        freed = sum(c.nbytes for c in commands[:drop])
        kept = [(c.doc, c.diff, c.text()) for c in commands[drop:]]
        clean = self.cleanIndex() - drop if self.cleanIndex() >= drop else -1
        self.clear()
        rebuilt = []
        for doc, diff, text in kept:
            command = MaskEditCommand(doc, diff, text)
            command.silent = True
            rebuilt.append(command)
            super().push(command)
        try:
            if clean >= 0:
                self.setIndex(clean)
                self.setClean()
            self.setIndex(done - drop)
            if clean < 0:
                self.resetClean()
        finally:
            for command in rebuilt:
                command.silent = False
        self.trimmed.emit(drop, freed)
