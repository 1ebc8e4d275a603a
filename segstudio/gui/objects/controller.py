"""Objects in the window: View > Object View, the object tools, the Objects dock, File > Import Objects.

Finding the objects of a whole slide (watershed) and measuring them run in a worker thread; after that an
edit re-draws and re-measures only the objects inside its rectangle (core.objects.measure.remeasure),
a fifth of a second after the last change, so painting stays fluid on slides of thousands of objects.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, QRectF, Qt, QThread, QTimer, Signal
from PySide6.QtGui import QAction, QActionGroup, QKeySequence, QPen
from PySide6.QtWidgets import QFileDialog, QGraphicsRectItem

from segstudio.core.objects.measure import measure_objects, remeasure, write_csv
from segstudio.gui.canvas.objects import ObjectOverlayItem
from segstudio.gui.objects.importing import ObjectImporter
from segstudio.gui.objects.panel import ObjectsPanel
from segstudio.gui.objects.tools import DeleteOneObjectTool, MergeObjectsTool, NewObjectTool, SplitObjectTool

REMEASURE_DELAY_MS = 200


def measure_options(doc) -> dict:
    return {"pixels": doc.image.pixels, "channel_names": doc.image.meta.channel_names,
            "pixel_size_um": doc.model.pixel_size_um, "hand": doc.hand, "model_version": doc.model_version,
            "image": doc.title}


class _FindJob(QThread):
    """Finds (when ``find``) and measures the objects of a snapshot of one document."""

    done = Signal(object, object, object, bool)  # doc, ids, Measurements, whether the ids were found afresh

    def __init__(self, doc, find: bool, parent=None) -> None:
        super().__init__(parent)
        self.doc = doc
        self.find = find
        self.mask = doc.mask.copy()
        self.ids = None if find else doc.model.objects
        # A model with a boundary output said where touching objects meet: split there.
        self.boundary = getattr(doc.prediction, "boundary", None)
        self.options = measure_options(doc)
        self.classes = doc.classes.copy()

    def run(self) -> None:
        from segstudio.core.objects.instances import find_instances

        ids = find_instances(self.mask, self.boundary).astype(np.uint32) if self.find else self.ids
        self.done.emit(self.doc, ids, measure_objects(ids, self.mask, self.classes, **self.options), self.find)


class ObjectsController(QObject):
    classes_offered = Signal(object)  # a class table with classes an imported file brought

    def __init__(self, window) -> None:
        super().__init__(window)
        self.window = window
        self.doc = None
        self.table = None
        self.job: _FindJob | None = None
        self._seen_prediction = None
        self._pending: list[tuple[int, int, int, int]] = []
        self._delivering = False  # a finished job hands its objects to the document
        self.class_id = lambda: 1  # the window hands in the editing tools' active class
        self.overlay = ObjectOverlayItem()
        self.overlay.setVisible(False)
        window.canvas.scene().addItem(self.overlay)
        self.highlight = QGraphicsRectItem()
        pen = QPen(Qt.GlobalColor.yellow, 2)
        pen.setCosmetic(True)
        self.highlight.setPen(pen)
        self.highlight.setZValue(6)
        self.highlight.setVisible(False)
        window.canvas.scene().addItem(self.highlight)
        self.panel = ObjectsPanel()
        # Along the bottom: a table wants width, and the right-hand column is full.
        self.dock = window.add_panel(self.panel, "Objects", Qt.DockWidgetArea.BottomDockWidgetArea)
        # Closed until objects are used: on a laptop screen an empty table would take a third of the image's
        # height from the first start.
        self.dock.hide()
        self.timer = QTimer(self)
        self.timer.setSingleShot(True)
        self.timer.setInterval(REMEASURE_DELAY_MS)
        self.timer.timeout.connect(self._remeasure)
        self._make_actions()
        self.importer = ObjectImporter(self)
        window.document_changed.connect(self._on_document)
        window.actions.outline_mask.toggled.connect(self.overlay.set_outline_only)
        self.panel.object_activated.connect(self.select_object)
        self.panel.export_csv_requested.connect(lambda: self.export_csv())
        self.panel.pixel_size_changed.connect(self.set_pixel_size)

    # --- actions -------------------------------------------------------------------------------
    def _action(self, text: str, shortcut: str, tip: str, slot, checkable=False) -> QAction:
        action = QAction(text, self.window)
        action.setShortcut(QKeySequence(shortcut))
        action.setStatusTip(tip)
        action.setCheckable(checkable)
        action.setEnabled(False)
        (action.toggled if checkable else action.triggered).connect(slot)
        return action

    def _make_actions(self) -> None:
        self.object_view = self._action("&Object View", "V", "Show each object in its own colour instead of "
                                        "the classes", self.set_object_view, checkable=True)
        self.find_again = self._action("&Find Objects Again", "Ctrl+Shift+J", "Split the mask into objects "
                                       "afresh (touching objects apart)", lambda: self.find_objects())
        self.import_action = self._action("&Import Objects...", "Ctrl+Shift+G", "Add objects from QuPath "
                                          "GeoJSON, an ImageJ ROI set, COCO JSON or a label image",
                                          lambda: self.import_file())
        self.tools = {"delete": DeleteOneObjectTool(self.current_with_objects, lambda: self.class_id(), self),
                      "merge": MergeObjectsTool(self.current_with_objects, lambda: self.class_id(), self),
                      "split": SplitObjectTool(self.current_with_objects, lambda: self.class_id(), self),
                      "new": NewObjectTool(self.current_with_objects, lambda: self.class_id(), self)}
        group = QActionGroup(self)
        self.tool_actions = {}
        for name, text, key, tip in (
                ("split", "&Split Object", "X", "Drag a cut line right across an object"),
                ("merge", "&Merge Objects", "J", "Drag from one object onto another"),
                ("delete", "&Delete One Object", "Shift+D", "Click an object: only it goes, not its neighbours"),
                ("new", "&New Object", "Shift+B", "Paint an object with a new number on the background")):
            action = self._action(text, key, tip, lambda on, n=name: on and self.use_tool(n), checkable=True)
            group.addAction(action)
            self.tool_actions[name] = action
        menu = self.window.menuBar().addMenu("&Objects")
        self.window.menuBar().insertMenu(self.window.menus["help"].menuAction(), menu)
        menu.addActions([self.object_view, self.find_again])
        menu.addSeparator()
        menu.addActions(list(self.tool_actions.values()))
        menu.addSeparator()
        menu.addAction(self.import_action)
        self.window.menus["objects"] = menu
        self.window.menus["view"].addAction(self.object_view)
        self.window.actions.register(self.object_view, self.find_again, self.import_action,
                                     *self.tool_actions.values())

    # --- documents -----------------------------------------------------------------------------
    def _on_document(self, doc) -> None:
        if self.doc is not None:
            self.doc.mask_changed.disconnect(self._on_mask_changed)
            self.doc.mask_replaced.disconnect(self._on_mask_replaced)
            self.doc.objects_found.disconnect(self._on_objects_found)
        self.doc = doc
        self.table = None
        self.highlight.setVisible(False)
        for action in (self.object_view, self.find_again, self.import_action, *self.tool_actions.values()):
            action.setEnabled(doc is not None)
        if doc is None:
            self.overlay.set_ids(None)
            self.panel.show_table(None)
            return
        doc.mask_changed.connect(self._on_mask_changed)
        doc.mask_replaced.connect(self._on_mask_replaced)
        doc.objects_found.connect(self._on_objects_found)
        self._seen_prediction = doc.prediction
        self.panel.set_pixel_size(doc.model.pixel_size_um)
        self.overlay.set_ids(doc.model.objects)
        self.panel.show_table(None)
        if doc.model.objects is not None or self.object_view.isChecked():
            self.start_job(find=doc.model.objects is None)

    def current_with_objects(self):
        """The current document once its objects are found (tools wait for them); else None and a word why."""
        if self.doc is None:
            return None
        if self.refused_read_only():
            return None
        if self.doc.model.objects is None:
            self.find_objects()
            self.window.statusBar().showMessage("Finding the objects of this image first; try again in a moment.")
            return None
        return self.doc

    def refused_read_only(self) -> bool:
        """True (and the user told why) when another window edits the current image."""
        if self.doc is None or self.doc.read_only is None:
            return False
        self.window.statusBar().showMessage(f"{self.doc.title} is read-only here: {self.doc.read_only}", 15000)
        return True

    def find_objects(self) -> None:
        if self.doc is not None:
            self.dock.show()
            self.start_job(find=True)

    def start_job(self, *, find: bool) -> None:
        if self.job is not None:
            self.job.wait()  # the previous result is replaced by this one
        self.job = _FindJob(self.doc, find, self)
        self.job.done.connect(self._job_done)
        self.job.finished.connect(self.job.deleteLater)
        self.window.statusBar().showMessage("Finding objects..." if find else "Measuring objects...")
        self.job.start()

    def _job_done(self, doc, ids, table, found) -> None:
        self.job = None
        if doc is not self.doc:
            return
        if not np.array_equal(doc.mask > 0, ids > 0):  # the mask changed meanwhile: find them again
            self.start_job(find=True)
            return
        if found:
            self._delivering = True
            try:
                doc.set_objects(ids)
            finally:
                self._delivering = False
            ids = doc.model.objects
        self.table = table
        self.overlay.set_ids(ids)
        self.panel.show_table(table)
        self.window.statusBar().showMessage(f"{len(table.rows)} objects in {doc.title}", 5000)

    def shutdown(self) -> None:
        """The window closes: stop an import (nothing is added to a closing window) and let the threads end."""
        self.importer.cancel()
        if self.importer.thread is not None:
            self.importer.thread.wait()
        if self.job is not None:
            self.job.wait()

    def wait(self) -> None:
        """Block until a running find/measure job has delivered (for scripts and tests)."""
        while self.job is not None:
            self.job.wait()
            from PySide6.QtCore import QCoreApplication

            QCoreApplication.processEvents()

    def _on_mask_changed(self, y0: int, x0: int, h: int, w: int) -> None:
        if self.doc.model.objects is None:
            return
        if self.doc.prediction is not self._seen_prediction:  # Predict drew new objects: split them
            self._seen_prediction = self.doc.prediction
            self.start_job(find=True)
            return
        self.overlay.refresh(y0, x0, h, w)
        self._pending.append((y0, x0, y0 + h, x0 + w))
        self.timer.start()

    def _on_mask_replaced(self) -> None:
        objects = self.doc.model.objects  # kept with the mask (restored work) or None: found again
        self.overlay.set_ids(objects)
        if objects is not None or self.object_view.isChecked():
            self.start_job(find=objects is None)

    def _on_objects_found(self) -> None:
        """Objects found elsewhere (an opened project's): show and measure them."""
        if self._delivering:
            return
        self.overlay.set_ids(self.doc.model.objects)
        self.start_job(find=False)

    def _remeasure(self) -> None:
        if self.doc is None or self.table is None or self.doc.model.objects is None:
            self._pending.clear()
            return
        boxes, self._pending = self._pending, []
        box = (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes),
               max(b[3] for b in boxes))
        remeasure(self.table, self.doc.model.objects, self.doc.mask, self.doc.classes, box,
                  **measure_options(self.doc))
        self.panel.show_table(self.table)

    # --- view and tools ------------------------------------------------------------------------
    def set_object_view(self, on: bool) -> None:
        if on:
            self.dock.show()
        self.overlay.setVisible(on)
        self.window.canvas.set_mask_visible(not on and self.window.actions.toggle_mask.isChecked())
        if on and self.doc is not None and self.doc.model.objects is None:
            self.find_objects()

    def use_tool(self, name: str) -> None:
        if self.doc is not None and self.doc.model.objects is None:
            self.find_objects()
        self.window.canvas.set_tool(self.tools[name])

    def select_object(self, object_id: int) -> None:
        """Show the object: centre it and draw a frame round it."""
        row = next((r for r in (self.table.rows if self.table else []) if r["id"] == object_id), None)
        if row is None:
            return
        y0, x0, y1, x1 = row["_box"]
        self.highlight.setRect(QRectF(x0, y0, x1 - x0, y1 - y0))
        self.highlight.setVisible(True)
        self.window.canvas.centerOn(row["centroid_x"] + 0.5, row["centroid_y"] + 0.5)
        self.panel.select_object(object_id)

    def set_pixel_size(self, micrometres: float) -> None:
        if self.doc is None:
            return
        self.doc.model.pixel_size_um = micrometres or None
        self.window.canvas.set_pixel_size_um(self.doc.model.pixel_size_um)
        if self.doc.model.objects is not None:
            self.start_job(find=False)

    # --- files ---------------------------------------------------------------------------------
    def export_csv(self, path: str | Path | None = None) -> Path | None:
        if self.table is None or self.doc is None:
            return None
        if path is None:
            suggestion = str(self.doc.path.with_name(f"{self.doc.path.stem}_objects.csv"))
            path, _ = QFileDialog.getSaveFileName(self.window, "Export Measurements", suggestion, "CSV (*.csv)")
            if not path:
                return None
        try:
            write_csv(path, [self.table])
        except OSError as err:
            self.window.show_error("Measurements not saved", str(err))
            return None
        self.window.statusBar().showMessage(f"{len(self.table.rows)} objects written to {path}", 8000)
        return Path(path)

    def import_file(self, path: str | Path | None = None) -> bool:
        """Ask for a file (unless given) and start importing it in the background; False if none started."""
        if self.doc is None or self.refused_read_only():
            return False
        if path is None:
            path, _ = QFileDialog.getOpenFileName(
                self.window, "Import Objects", str(self.doc.path.parent),
                "Objects (*.geojson *.json *.zip *.roi *.tif *.tiff);;All files (*)")
            if not path:
                return False
        return self.importer.start(self.doc, Path(path))
