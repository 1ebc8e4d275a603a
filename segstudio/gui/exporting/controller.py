"""File > Export to Dataset: writes open documents into a dataset folder (core.dataset) off the GUI thread.

Masks and hand maps are copied when the export starts, so the user can keep painting while large images
are compressed and written. An image that cannot be exported is reported by name and the others are still
written; the manifest is updated once, at the end, so the dataset never lists an entry without its files.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import QObject, Qt, QThread, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QFileDialog

from segstudio.core.document import ImageStatus
from segstudio.core.words import count
from segstudio.gui.exporting.dialog import ExportDialog, NnunetOptions
from segstudio.gui.exporting.objects import ObjectsExportThread, ask_target
from segstudio.gui.progress import JobProgress


@dataclass
class _Snapshot:
    """What one document looked like when the export started."""

    doc: object
    pixels: object
    channels: tuple[int, ...] | None
    channel_names: tuple[str, ...] | None
    mask: object
    hand: object
    classes: object
    model_version: str | None
    source: str
    undo_index: int
    mask_object: object  # identity check: a replaced mask means the document changed
    objects: object = None  # the instance map the user found or edited, if any


@dataclass
class ExportReport:
    folder: Path
    exported: list = field(default_factory=list)  # documents written into the dataset
    failed: list = field(default_factory=list)  # (document, reason)
    error: str | None = None  # the export as a whole failed (nothing was added)
    cancelled: bool = False
    nnunet_path: Path | None = None
    nnunet_error: str | None = None
    dataset_size: int | None = None


def snapshot(doc) -> _Snapshot:
    from segstudio.core.labels import ClassTable

    meta = doc.image.meta
    channels = tuple(doc.display_channels) if doc.display_channels else None
    names = meta.channel_names
    if names and channels:
        names = tuple(names[i] for i in channels if i < len(names))
    return _Snapshot(
        doc=doc, pixels=doc.image.pixels, channels=channels, channel_names=tuple(names) if names else None,
        mask=doc.mask.copy(), hand=doc.hand.copy(), classes=ClassTable.from_list(doc.classes.to_list()),
        model_version=doc.model_version, source=str(doc.path.resolve()), undo_index=doc.undo_stack.index(),
        mask_object=doc.mask, objects=None if doc.model.objects is None else doc.model.objects.copy())


def _reason(err: Exception) -> str:
    """Our own errors say what went wrong in words; anything else is named by its type as well."""
    from segstudio.core.dataset import DatasetError

    return str(err) if isinstance(err, (DatasetError, OSError)) else f"{type(err).__name__}: {err}"


class _ExportThread(QThread):
    progress = Signal(int, int)
    done = Signal(object)  # ExportReport

    def __init__(self, folder: Path, snapshots: list[_Snapshot], nnunet: NnunetOptions | None, parent=None) -> None:
        super().__init__(parent)
        self.folder = folder
        self.snapshots = snapshots
        self.nnunet = nnunet
        self.cancel_event = threading.Event()

    def run(self) -> None:
        report = ExportReport(self.folder)
        try:
            self._export(report)
        except Exception as err:  # anything unforeseen still ends the job and reaches the user
            report.error = _reason(err)
        finally:
            # Always: the window takes the progress bar down and enables Export again on this signal.
            self.progress.emit(len(self.snapshots), len(self.snapshots))
            self.done.emit(report)

    def _export(self, report: ExportReport) -> None:
        from segstudio.core.dataset import ExportItem, export_many

        total = len(self.snapshots)
        by_item: dict[int, _Snapshot] = {}
        handed_out: list[_Snapshot] = []
        failed: dict[int, str] = {}

        def items():
            for i, snap in enumerate(self.snapshots):
                if self.cancel_event.is_set():
                    report.cancelled = True
                    return
                self.progress.emit(i, total)
                handed_out.append(snap)
                try:
                    # The channels the model saw when it predicted this mask: training must see the same ones.
                    pixels = snap.pixels[..., list(snap.channels)] if snap.channels else snap.pixels
                    item = ExportItem(pixels=pixels, mask=snap.mask, source=snap.source, hand=snap.hand,
                                      model_version=snap.model_version, channel_names=snap.channel_names,
                                      classes=snap.classes, objects=snap.objects)
                except Exception as err:  # this image cannot be exported; the others still are
                    failed[id(snap)] = _reason(err)
                    continue
                by_item[id(item)] = snap
                yield item

        def on_error(item, err) -> None:
            failed[id(by_item[id(item)])] = str(err)

        export_many(self.folder, items(), self.snapshots[0].classes, on_error=on_error)
        report.exported = [s for s in handed_out if id(s) not in failed]
        report.failed = [(s, failed[id(s)]) for s in handed_out if id(s) in failed]
        self._after_export(report)

    def _after_export(self, report: ExportReport) -> None:
        """The dataset's new size and the nnU-Net layout: the images are in already, whatever fails here."""
        from segstudio.core.dataset import load_manifest
        from segstudio.core.nnunet import export_nnunet

        try:
            report.dataset_size = len(load_manifest(self.folder)["entries"])
        except Exception:  # the count is a courtesy; the export itself has succeeded
            report.dataset_size = None
        if self.nnunet is not None and report.dataset_size and not report.cancelled:
            try:
                report.nnunet_path = export_nnunet(self.folder, self.nnunet.out_root,
                                                   dataset_id=self.nnunet.dataset_id, name=self.nnunet.name)
            except Exception as err:  # named in the report next to the images that were exported
                report.nnunet_error = _reason(err)

    def cancel(self) -> None:
        self.cancel_event.set()


class ExportController(QObject):
    export_finished = Signal(object)  # ExportReport, with documents (not snapshots) in exported/failed

    def __init__(self, window) -> None:
        super().__init__(window)
        self.window = window
        self.dialog: ExportDialog | None = None
        self.thread: _ExportThread | None = None
        self.last_report: ExportReport | None = None
        self.progress = JobProgress()
        self.progress.setObjectName("exportProgress")
        self.progress.cancel_button.setToolTip("Stop after the image being written; images already written stay")
        window.statusBar().addWidget(self.progress)
        self.progress.cancel_requested.connect(self.cancel)
        window.actions.export_dataset.triggered.connect(self.show_dialog)
        window.actions.export_mask.triggered.connect(lambda: self.export_mask())
        self.export_objects_action = QAction("Export &Objects...", window)
        self.export_objects_action.setShortcut(QKeySequence("Ctrl+Alt+E"))
        self.export_objects_action.setStatusTip("Save the objects for QuPath (GeoJSON), Fiji (ROI set), napari "
                                                "(OME-Zarr), COCO tools or as an instance TIFF")
        self.export_objects_action.triggered.connect(lambda: self.export_objects())
        window.menus["file"].insertAction(window.actions.export_dataset, self.export_objects_action)
        window.actions.register(self.export_objects_action)
        self.objects_thread: ObjectsExportThread | None = None
        window.documents_changed.connect(self._update_enabled)
        window.document_changed.connect(lambda _doc: self._update_enabled())
        self._update_enabled()

    def busy(self) -> bool:
        return self.thread is not None

    def show_dialog(self) -> ExportDialog | None:
        """Open the export dialog (not blocking); accepting it starts the export."""
        if self.busy() or not self.window.documents:
            return None
        self.dialog = ExportDialog(self.window.documents, self.window.current, self.window)
        self.dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.dialog.accepted.connect(
            lambda d=self.dialog: self.start(d.folder(), d.selected_documents(), d.nnunet()))
        self.dialog.destroyed.connect(lambda *_: setattr(self, "dialog", None))
        self.dialog.open()
        return self.dialog

    def start(self, folder: Path, documents, nnunet: NnunetOptions | None = None) -> None:
        if self.busy():
            raise RuntimeError("an export is already running")
        documents = list(documents)
        if not documents:
            return
        snaps = [snapshot(d) for d in documents]
        self.thread = _ExportThread(Path(folder), snaps, nnunet, self)
        self.thread.progress.connect(lambda done, total: self.progress.update_progress(done, total))
        self.thread.done.connect(self._on_done)
        self.thread.finished.connect(self.thread.deleteLater)
        self.progress.start(f"Exporting {len(snaps)} image{'s' if len(snaps) != 1 else ''} to {Path(folder).name}",
                            len(snaps))
        self._update_enabled()
        self.thread.start()

    def cancel(self) -> None:
        if self.thread is not None:
            self.thread.cancel()

    def _on_done(self, report: ExportReport) -> None:
        self.thread.wait()
        self.thread = None
        self.progress.finish()
        exported_docs = []
        for snap in report.exported:
            doc = snap.doc
            if doc not in self.window.documents:
                continue
            exported_docs.append(doc)
            # An edit made while the export ran is not in the dataset, so the document stays "edited".
            if doc.undo_stack.index() == snap.undo_index and doc.mask is snap.mask_object:
                doc.set_status(ImageStatus.EXPORTED)
        report.exported = exported_docs
        report.failed = [(snap.doc, reason) for snap, reason in report.failed]
        self.last_report = report
        self._tell_user(report)
        self._update_enabled()
        self.export_finished.emit(report)

    def _tell_user(self, report: ExportReport) -> None:
        where = report.folder
        if report.error:
            self.window.statusBar().showMessage(f"Export to {where} failed: {report.error}", 15000)
            self.window.show_error("Export failed", f"Nothing was exported to {where}.\n\n{report.error}")
            return
        n = len(report.exported)
        size = "" if report.dataset_size is None else f"; the dataset now holds {count(report.dataset_size, 'image')}"
        message = f"Exported {n} image{'s' if n != 1 else ''} to {where}{size}."
        if report.cancelled:
            message = "Export cancelled. " + message
        if report.nnunet_path is not None:
            message += f" nnU-Net layout written to {report.nnunet_path}."
        self.window.statusBar().showMessage(message, 10000)
        problems = [f"{doc.title}: {reason}" for doc, reason in report.failed]
        if report.nnunet_error:
            problems.append(f"nnU-Net layout: {report.nnunet_error}")
        if problems:
            title = "Some images could not be exported" if report.failed else "nnU-Net export failed"
            self.window.show_error(title, message + "\n\n" + "\n".join(problems))

    # --- File > Export Mask --------------------------------------------------------------------
    def export_mask(self, path: str | Path | None = None) -> Path | None:
        """Save the current mask as an index PNG (pixel value = class id) where the user chooses."""
        from segstudio.core.storage import save_mask_png

        window = self.window
        doc = window.current
        if doc is None:
            return None
        if path is None:
            suggestion = str(doc.path.with_name(f"{doc.path.stem}_mask.png"))
            path, _ = QFileDialog.getSaveFileName(window, "Export Mask", suggestion, "Index mask PNG (*.png)")
            if not path:
                return None
        target = Path(path)
        if target.suffix.lower() != ".png":
            target = target.with_suffix(".png")
        if target.resolve() == doc.path.resolve():
            window.show_error("Mask not saved", f"{target} is the image itself; choose another name.")
            return None
        try:
            save_mask_png(target, doc.mask)
        except (OSError, ValueError) as err:
            window.show_error("Mask not saved", str(err))
            return None
        window.statusBar().showMessage(f"Mask saved to {target} (pixel values are class ids)", 8000)
        return target

    # --- File > Export Objects -----------------------------------------------------------------
    def export_objects(self, fmt: str | None = None, path: str | Path | None = None) -> ObjectsExportThread | None:
        """Write the current image's objects; the save dialog's file type picks the format."""
        doc = self.window.current
        if doc is None or self.objects_thread is not None:
            return None
        if path is None:
            chosen = ask_target(self.window, doc)
            if chosen is None:
                return None
            fmt, path = chosen
        self.objects_thread = ObjectsExportThread(fmt, Path(path), doc, self)
        self.objects_thread.done.connect(self._objects_written)
        self.objects_thread.finished.connect(self.objects_thread.deleteLater)
        self.window.statusBar().showMessage(f"Writing the objects of {doc.title}...")
        self.objects_thread.start()
        return self.objects_thread

    def _objects_written(self, target: Path, outcome) -> None:
        self.objects_thread.wait()
        self.objects_thread = None
        if isinstance(outcome, str):
            self.window.show_error("Objects not exported", outcome)
        else:
            self.window.statusBar().showMessage(f"{outcome} objects written to {target}", 10000)

    def _update_enabled(self) -> None:
        self.export_objects_action.setEnabled(self.window.current is not None)
        self.window.actions.export_dataset.setEnabled(bool(self.window.documents) and not self.busy())

    def shutdown(self) -> None:
        if self.thread is not None:
            self.thread.cancel()
            self.thread.wait()
