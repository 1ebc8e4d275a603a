"""Bringing images into the window: File > Open, Open Folder, Open Sample, drops, and View > Channels
and Page (a different page is a different image read from the file).

Reading happens here and hands ImageDocuments to the window, which keeps the list of open documents.
"""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from PySide6.QtCore import QObject, QSettings, Qt
from PySide6.QtWidgets import QFileDialog

from segstudio.core import paths
from segstudio.core.imageio import SUPPORTED_SUFFIXES, ImageReadError, read_image
from segstudio.gui.documents.document import ImageDocument
from segstudio.gui.settings import LAST_FOLDER_KEY


def expand_image_paths(items: Iterable[str | Path]) -> list[Path]:
    """Files as given, folders expanded to the supported images inside them (sorted, not recursive)."""
    out: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            out.extend(sorted(p for p in path.iterdir() if p.suffix.lower() in SUPPORTED_SUFFIXES and p.is_file()))
        else:
            out.append(path)
    return out


class OpeningController(QObject):
    def __init__(self, window) -> None:
        super().__init__(window)
        self.window = window
        a = window.actions
        a.open.triggered.connect(self.choose_files)
        a.open_folder.triggered.connect(self.choose_folder)
        a.channels.triggered.connect(self.choose_channels)
        self.populate_samples_menu()

    def populate_samples_menu(self) -> None:
        menu = self.window.menus["samples"]
        menu.clear()
        samples = sorted(p for p in paths.samples_dir().glob("*") if p.suffix.lower() in SUPPORTED_SUFFIXES)
        for sample in samples:
            action = menu.addAction(sample.name)
            action.triggered.connect(lambda _=False, p=sample: self.open_paths([p]))
        if not samples:
            empty = menu.addAction("(no sample images installed)")
            empty.setEnabled(False)

    # --- choosing ------------------------------------------------------------------------------
    def choose_files(self) -> None:
        settings = QSettings()
        start = settings.value(LAST_FOLDER_KEY, str(Path.home()))
        patterns = " ".join(f"*{s}" for s in SUPPORTED_SUFFIXES)
        files, _ = QFileDialog.getOpenFileNames(self.window, "Open Images", start,
                                                f"Images ({patterns});;All files (*)")
        if files:
            settings.setValue(LAST_FOLDER_KEY, str(Path(files[0]).parent))
            self.open_paths(files)

    def choose_folder(self) -> None:
        settings = QSettings()
        folder = QFileDialog.getExistingDirectory(self.window, "Open Folder",
                                                  settings.value(LAST_FOLDER_KEY, str(Path.home())))
        if folder:
            settings.setValue(LAST_FOLDER_KEY, folder)
            self.open_paths([folder])

    # --- reading -------------------------------------------------------------------------------
    def open_paths(self, items: Iterable[str | Path]) -> list[ImageDocument]:
        """Open images (folders expanded); show the first that opened. Bad files are reported, not fatal."""
        window = self.window
        opened: list[ImageDocument] = []
        errors: list[str] = []
        for path in expand_image_paths(items):
            existing = self.find_document(path)
            if existing is not None:
                opened.append(existing)
                continue
            try:
                doc = self._load_document(path)
            except ImageReadError as err:
                errors.append(str(err))
                continue
            window.documents.append(doc)
            opened.append(doc)
        if opened:
            window.documents_changed.emit()
            window.set_current(opened[0])
        if errors:
            window.show_error("Some files could not be opened" if len(errors) > 1 else "Cannot open image",
                              "\n".join(errors))
        return opened

    def _load_document(self, path: Path) -> ImageDocument:
        self.window.setCursor(Qt.CursorShape.WaitCursor)
        try:
            image = read_image(path)
        finally:
            self.window.unsetCursor()
        return ImageDocument(image, parent=self.window)

    def find_document(self, path: str | Path) -> ImageDocument | None:
        target = Path(path).resolve()
        return next((d for d in self.window.documents if d.path.resolve() == target), None)

    def choose_channels(self) -> None:
        from segstudio.gui.canvas.channels import ChannelsDialog

        window = self.window
        doc = window.current
        if doc is None:
            return
        dialog = ChannelsDialog(doc, window)
        if not dialog.exec():
            return
        page, channels = dialog.selection()
        if page != doc.image.meta.page:
            try:
                image = read_image(doc.path, page=page)
            except ImageReadError as err:
                window.show_error("Cannot open image", str(err))
                return
            replacement = ImageDocument(image, classes=doc.classes, parent=window)
            window.documents[window.documents.index(doc)] = replacement
            window.current = None
            window.set_current(replacement)
            doc = replacement
        doc.set_display_channels(channels)
        window.canvas.set_image(doc.display_picture())
        window.canvas.set_mask(doc.mask, doc.classes.lut_rgba())
