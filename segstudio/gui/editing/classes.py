"""One class table for the whole session, shared by every open image.

Users name a class once and expect "nucleus" to mean the same thing (and look the same) on every image
they label, so all documents hold the same ClassTable object and every edit applies to all of them.
Ids never change meaning: renaming, recolouring and reordering only change how pixels are shown.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
from PySide6.QtCore import QObject, Signal

from segstudio.core.document import ImageStatus
from segstudio.core.edits import Diff
from segstudio.core.labels import ClassTable, LabelClass
from segstudio.gui.documents.commands import MaskEditCommand
from segstudio.gui.documents.document import ImageDocument


class SessionClasses(QObject):
    changed = Signal()  # names, colours, order or membership changed
    message = Signal(str)

    def __init__(self, documents: Callable[[], Iterable[ImageDocument]], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._documents = documents
        self.table = ClassTable.default()
        # Bumped on every change; an autosave started before a change does not count as saving it.
        self.generation = 0

    # --- documents -----------------------------------------------------------------------------
    def attach(self, doc: ImageDocument) -> None:
        """Make a newly opened document use the session table."""
        if doc.classes is not self.table:
            doc.classes = self.table
            self._fit_mask_dtype(doc)

    def _fit_mask_dtype(self, doc: ImageDocument) -> None:
        # Ids above 255 need 16-bit masks; masks only ever widen so no id is lost.
        wanted = self.table.mask_dtype
        if np.dtype(doc.mask.dtype).itemsize < wanted.itemsize:
            doc.replace_mask(doc.mask.astype(wanted))

    def _changed(self, *, mark_unsaved: bool = True) -> None:
        self.generation += 1
        for doc in list(self._documents()):
            doc.classes = self.table
            self._fit_mask_dtype(doc)
            # Blank, untouched images have nothing worth autosaving; the others carry the table with them.
            if mark_unsaved and (doc.status != ImageStatus.NEW or doc.unsaved):
                doc.mark_unsaved()
            doc.classes_changed.emit()
        self.changed.emit()

    # --- edits (ValueError with a readable message when the table refuses) ------------------------
    def add(self, name: str | None = None, color=None) -> LabelClass:
        if name is None:
            taken = {n.casefold() for n in self.table.names()}
            number = len(self.table)
            while f"class {number}".casefold() in taken:
                number += 1
            name = f"class {number}"
        cls = self.table.add(name, color)
        self._changed()
        return cls

    def rename(self, class_id: int, name: str) -> None:
        if self.table.get(class_id).name == name.strip():
            return
        self.table.rename(class_id, name)
        self._changed()

    def recolor(self, class_id: int, rgb) -> None:
        self.table.recolor(class_id, rgb)
        self._changed()

    def move(self, class_id: int, new_index: int) -> None:
        if self.table.ids().index(class_id) == new_index:
            return
        self.table.move(class_id, new_index)
        self._changed()

    def pixels_using(self, class_id: int) -> dict[ImageDocument, int]:
        """Open documents whose mask holds `class_id`, with the pixel counts."""
        counts = {}
        for doc in self._documents():
            n = int(np.count_nonzero(doc.mask == class_id))
            if n:
                counts[doc] = n
        return counts

    def remove(self, class_id: int) -> LabelClass:
        """Remove a class; its pixels in open images become background as one undoable step per image."""
        cls = self.table.get(class_id)
        self.table.remove(class_id)  # refuses the background before anything else changes
        for doc in self.pixels_using(class_id):
            _clear_class(doc, class_id, f"Remove class {cls.name}")
        self._changed()
        return cls

    # --- restoring ----------------------------------------------------------------------------
    def adopt_from_model(self, incoming: ClassTable) -> None:
        """The classes of a model that just predicted: one it predicts but the session lacks comes back.

        Its pixels are in the new mask, so it needs a name and a colour to be seen and corrected; the user
        is told, because it may be a class they removed (a model keeps predicting what it was trained on).
        """
        missing = [cls.name for cls in incoming if cls.id not in set(self.table.ids())]
        user_edited = self.generation > 0  # before any edit the model's table simply becomes the session's
        self.adopt(incoming)
        if missing and user_edited:
            names = ", ".join(repr(n) for n in missing)
            self.message.emit(f"The model predicts {names}, which the Classes panel did not list; added so its "
                              "pixels show. Remove it, or fine-tune a model without it, if it is not wanted.")

    def adopt(self, incoming: ClassTable) -> None:
        """Bring in the classes of autosaved work.

        While the session still has the untouched default table, the saved table replaces it (the user's
        names from last time win). Afterwards, the session's own classes win for shared ids and only
        missing ids are added, so pixels of every open image keep their meaning.
        """
        if incoming.to_list() == self.table.to_list():
            return
        if self.generation == 0 and self.table.to_list() == ClassTable.default().to_list():
            entries = incoming.to_list()
            ids = {e["id"] for e in entries}
            entries += [e for e in self.table.to_list() if e["id"] not in ids]
        else:
            entries = self.table.to_list()
            known_ids = set(self.table.ids())
            taken = {n.casefold() for n in self.table.names()}
            differing = []
            for cls in incoming:
                if cls.id in known_ids:
                    if self.table.get(cls.id).name.casefold() != cls.name.casefold():
                        differing.append(f"{cls.name!r} is shown as {self.table.get(cls.id).name!r}")
                    continue
                name = cls.name if cls.name.casefold() not in taken else f"{cls.name} ({cls.id})"
                taken.add(name.casefold())
                entries.append({"id": cls.id, "name": name, "color": list(cls.color)})
            if differing:
                self.message.emit("Restored classes differ from this session's: " + "; ".join(differing))
        self.table = ClassTable.from_list(entries)
        # Nothing new to save: every open image keeps the ids it had; only names for new ids arrived.
        self._changed(mark_unsaved=False)


def _clear_class(doc: ImageDocument, class_id: int, text: str) -> None:
    hit = doc.mask == class_id
    rows = np.flatnonzero(hit.any(axis=1))
    cols = np.flatnonzero(hit.any(axis=0))
    region = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    old = doc.mask[region].copy()
    new = np.where(hit[region], 0, old).astype(old.dtype)
    hand = doc.hand[region].copy()
    diff = Diff(int(rows[0]), int(cols[0]), old, new, hand_old=hand, hand_new=hand.copy())
    diff.apply(doc.mask, doc.hand)
    doc.undo_stack.push(MaskEditCommand(doc, diff, text))
    doc.notify_region(diff.y0, diff.x0, *diff.shape)
