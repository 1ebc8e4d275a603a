"""The pages of open multi-page files that are not shown now, each with its own mask, hand map and undo history.

The window shows one page of a file at a time, and each page is its own ImageDocument. Choosing another
page (View > Channels and Page) puts the shown one here instead of dropping it, so switching back shows
the page's mask again and Undo still undoes its strokes. The autosave treats these documents as open.
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject

from segstudio.core.autosave import AutosaveStore
from segstudio.gui.documents.document import ImageDocument


def _file_key(path: Path) -> Path:
    return AutosaveStore.resolved(path)


class PageShelf(QObject):
    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._pages: dict[tuple[Path, int], ImageDocument] = {}

    def put(self, doc: ImageDocument) -> None:
        """Keep a page that is no longer shown."""
        self._pages[(_file_key(doc.path), doc.image.meta.page)] = doc

    def take(self, path: Path, page: int) -> ImageDocument | None:
        """The kept document of ``page`` of the file at ``path``, no longer kept here; None if none is."""
        return self._pages.pop((_file_key(path), page), None)

    def documents(self) -> list[ImageDocument]:
        return list(self._pages.values())

    def pages_of(self, path: Path) -> list[ImageDocument]:
        key = _file_key(path)
        return [doc for (file, _page), doc in sorted(self._pages.items(), key=lambda item: item[0][1]) if file == key]

    def release_closed(self, shown: list[ImageDocument]) -> list[ImageDocument]:
        """Forget the pages of files no longer open in ``shown``; returns them (already autosaved when hidden)."""
        open_files = {_file_key(doc.path) for doc in shown}
        gone = [key for key in self._pages if key[0] not in open_files]
        return [self._pages.pop(key) for key in gone]
