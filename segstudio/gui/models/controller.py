"""Model > New Model, Import Model and Export Model: the user's own models in and out of the library.

Building a network and writing its file take a second or more (an ImageNet start reads 100 MB), so the work
runs on a plain thread and its result comes back as a queued signal; the window stays responsive. The
finished model is listed in the Model panel at once (the prediction controller reloads the library and
selects it).
"""
from __future__ import annotations

import importlib.util
import threading
from collections.abc import Callable

from PySide6.QtCore import QObject, QSettings, Qt, Signal
from PySide6.QtWidgets import QFileDialog, QMessageBox

from segstudio.gui.models.dialog import NewModelDialog
from segstudio.gui.settings import TILE_SECONDS_PREFIX


class ModelsController(QObject):
    """`classes()` gives the session's class table as a list of dicts (the window wires it to the editor)."""

    created = Signal(object)   # engine.new_model.NewModelResult, or the list of files an export wrote
    failed = Signal(str)
    _done = Signal(object, str)  # result or None, error text (queued from the work thread)
    _measured = Signal(str, float)  # network, seconds per 512 x 512 tile (queued from the measuring thread)

    def __init__(self, window, classes: Callable[[], list[dict]]) -> None:
        super().__init__(window)
        self.window = window
        self.classes = classes
        self.dialog: NewModelDialog | None = None
        self.busy = False
        self.last_message = ""
        actions = window.actions
        actions.new_model.triggered.connect(self.show_new_dialog)
        actions.import_model.triggered.connect(self.choose_import)
        actions.export_model.triggered.connect(self.choose_export)
        window.prediction.model_changed.connect(self._update_enabled)
        self._done.connect(self._on_done, Qt.ConnectionType.QueuedConnection)
        self._measured.connect(self._on_measured, Qt.ConnectionType.QueuedConnection)
        self._measuring: set[str] = set()
        window.prediction.engine_ready.connect(self._update_enabled)
        self._update_enabled()

    def _update_enabled(self, *_args) -> None:
        ready = self.window.prediction.ready and not self.busy
        actions = self.window.actions
        actions.new_model.setEnabled(ready)
        actions.import_model.setEnabled(ready)
        actions.export_model.setEnabled(ready and self.window.prediction.model_id() is not None)

    # --- New Model -----------------------------------------------------------------------------
    def show_new_dialog(self) -> NewModelDialog | None:
        from segstudio.models.backbones import imagenet_weights_available
        from segstudio.models.library import ModelLibrary

        if self.busy:
            return None
        entries = ModelLibrary().entries()
        doc = self.window.current
        channels = doc.image.meta.channels if doc is not None else 1
        names = doc.image.meta.channel_names if doc is not None else None
        self.dialog = NewModelDialog(self.window, classes=self.classes(), models=entries, image_channels=channels,
                                     channel_names=names, taken_names={e.meta.name for e in entries},
                                     imagenet=imagenet_weights_available, tile_time=tile_time,
                                     measure=self.measure_tile_time)
        self.dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.dialog.accepted.connect(lambda d=self.dialog: self.create(d.spec(), d.make_seconds()))
        self.dialog.destroyed.connect(lambda *_, d=self.dialog: self._forget_dialog(d))
        self.dialog.open()
        return self.dialog

    def _forget_dialog(self, dialog) -> None:
        if self.dialog is dialog:  # not a newer dialog opened before this one was deleted
            self.dialog = None

    def measure_tile_time(self, arch: str) -> None:
        """Time one 512 x 512 tile of `arch` on this computer, on a thread; remembered for later dialogs."""
        if arch in self._measuring:
            return
        self._measuring.add(arch)

        def target():
            try:
                seconds = _tile_seconds(arch)
            except Exception:  # noqa: BLE001 - the dialog keeps the catalogue's figure
                seconds = -1.0
            try:
                self._measured.emit(arch, seconds)
            except RuntimeError:  # the window closed meanwhile
                pass

        threading.Thread(target=target, name="tile-timing", daemon=True).start()

    def _on_measured(self, arch: str, seconds: float) -> None:
        self._measuring.discard(arch)
        if seconds > 0:
            QSettings().setValue(TILE_SECONDS_PREFIX + arch, float(seconds))
            if self.dialog is not None:
                self.dialog.set_tile_time(arch)

    def create(self, spec, seconds: float = 0.0) -> None:
        """Make the model on a work thread (`seconds`: about how long, said in the status bar); `created` or
        `failed` follows."""
        about = f" (about {seconds:.0f} s)" if seconds >= 3 else ""
        self._run(f"Making {spec.name}...{about}", lambda: _create(spec))

    # --- Import / Export -----------------------------------------------------------------------
    def choose_import(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self.window, "Import Model", "",
                                              "Model files (*.safetensors *.pt *.pth)")
        if path:
            self.import_file(path)

    def import_file(self, path: str) -> None:
        self._run(f"Importing {path}...", lambda: _import(path))

    def choose_export(self) -> None:
        model_id = self.window.prediction.model_id()
        if model_id is None:
            return
        folder = QFileDialog.getExistingDirectory(self.window, f"Export {model_id} to Folder")
        if not folder:
            return
        onnx = False
        if importlib.util.find_spec("onnx") is not None:  # the optional package ONNX export needs
            answer = QMessageBox.question(
                self.window, "Export Model", f"Also write {model_id} as an ONNX file, for programs other than "
                "segstudio? (The .safetensors and .json pair is written either way.)",
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.No)
            onnx = answer == QMessageBox.StandardButton.Yes
        self.export_to(model_id, folder, onnx=onnx)

    def export_to(self, model_id: str, folder: str, *, onnx: bool = False) -> None:
        self._run(f"Exporting {model_id}...", lambda: _export(model_id, folder, onnx))

    def _run(self, message: str, work: Callable[[], object]) -> None:
        self.busy = True
        self._update_enabled()
        self.window.statusBar().showMessage(message)

        def target():
            try:
                result, error = work(), ""
            except Exception as err:  # noqa: BLE001 - shown to the user; the window carries on
                result, error = None, str(err)
            self._done.emit(result, error)

        threading.Thread(target=target, name="model-making", daemon=True).start()

    def _on_done(self, result, error: str) -> None:
        self.busy = False
        self._update_enabled()
        if error:
            self.last_message = error
            self.window.statusBar().clearMessage()
            self.window.show_error("Model", error)
            self.failed.emit(error)
            return
        if isinstance(result, list):  # exported files
            self.last_message = "Wrote " + ", ".join(str(p) for p in result)
            self.window.statusBar().showMessage(self.last_message, 10000)
            self.created.emit(result)
            return
        self.window.prediction.reload_models(select=result.meta.id)
        lines = [f"{result.meta.id} is ready and selected in the Model panel.", *result.notes]
        self.last_message = "\n".join(lines)
        self.window.statusBar().showMessage(lines[0], 10000)
        box = QMessageBox(QMessageBox.Icon.Information, "Model", self.last_message, QMessageBox.StandardButton.Ok,
                          self.window)
        box.setObjectName("modelReadyDialog")
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()
        self.created.emit(result)


def _tile_seconds(arch: str) -> float:
    from segstudio.engine.new_model import tile_seconds

    return tile_seconds(arch)


def tile_time(arch: str) -> float | None:
    """The time per 512 x 512 tile of `arch` measured on this computer by an earlier dialog, or None."""
    try:
        seconds = float(QSettings().value(TILE_SECONDS_PREFIX + arch, 0.0))
    except (TypeError, ValueError):
        return None
    return seconds if seconds > 0 else None


def _create(spec):
    from segstudio.engine.new_model import create_model

    return create_model(spec)


def _import(path: str):
    from segstudio.engine.model_files import import_model
    from segstudio.engine.new_model import NewModelResult

    saved, meta = import_model(path)
    return NewModelResult(meta, saved, None, [f"Imported from {path}."])


def _export(model_id: str, folder: str, onnx: bool):
    from segstudio.engine.model_files import export_model

    return export_model(model_id, folder, onnx=onnx)
