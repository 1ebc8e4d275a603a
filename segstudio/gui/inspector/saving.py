"""Save view as PNG and Save tap, for the inspector of the main window and of each slide window alike."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QBuffer, QByteArray, QIODevice
from PySide6.QtWidgets import QFileDialog


class InspectorSaving:
    """What one inspector panel saves. `inspection()` is the result shown; `report(path, reason)` tells the
    user a save failed; each success is shown in `window`'s status bar and kept in last_saved."""

    def __init__(self, window, panel, inspection: Callable[[], object], report: Callable[[Path, str], None]):
        self.window, self.panel, self._inspection, self._report = window, panel, inspection, report
        self.last_saved: Path | None = None
        panel.save_png_requested.connect(lambda: self.save_view_png())
        panel.save_tap_requested.connect(lambda: self.save_tap())

    def save_view_png(self, path: str | Path | None = None) -> Path | None:
        """The dock as it looks now, as a PNG (asks where when no path is given)."""
        from segstudio.core.storage import atomic_write_bytes

        if path is None:
            path, _ = QFileDialog.getSaveFileName(self.window, "Save Inspector View", "inspector.png",
                                                  "PNG image (*.png)")
            if not path:
                return None
        path = Path(path)
        if path.suffix.lower() != ".png":
            path = path.with_suffix(path.suffix + ".png") if path.suffix else path.with_suffix(".png")
        data = QByteArray()
        buffer = QBuffer(data)
        buffer.open(QIODevice.OpenModeFlag.WriteOnly)
        if not self.panel.grab().save(buffer, "PNG"):
            self._report(path, "the picture could not be encoded")
            return None
        buffer.close()
        try:
            atomic_write_bytes(path, bytes(data))
        except OSError as err:
            self._report(path, str(err))
            return None
        return self._saved(path)

    def save_tap(self, path: str | Path | None = None, name: str | None = None) -> Path | None:
        """The chosen tap's tensor as .npy or TIFF (asks where when no path is given)."""
        from segstudio.engine.inspect import save_tap

        inspection = self._inspection()
        name = name or self.panel.selected_tap()
        if inspection is None or name is None or name not in inspection.taps:
            return None
        if path is None:
            safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name.split(" (")[0])
            path, chosen = QFileDialog.getSaveFileName(self.window, f"Save Tap {name}", f"{safe}.npy",
                                                       "NumPy array (*.npy);;TIFF image (*.tif *.tiff)")
            if not path:
                return None
            if not Path(path).suffix:
                path += ".tif" if chosen.startswith("TIFF") else ".npy"
        try:
            written = save_tap(path, inspection, name)
        except (OSError, ValueError) as err:
            self._report(Path(path), str(err))
            return None
        return self._saved(written)

    def _saved(self, path: Path) -> Path:
        self.last_saved = path
        self.window.statusBar().showMessage(f"Saved {path}", 6000)
        return path
