"""The Network Inspector of a whole-slide window: the maps of the tile at the centre of the view, following
the view as the user pans and zooms.

The slide window knows nothing of it: the main window hands each new slide window to
InspectorController.attach_slide, which builds one of these on it. The maps come from the model host's one
warm model (engine.inspect_slide reads the tile from the file at level 0, normalised as Predict normalises
it). Moving the view restarts a short timer; when the view rests, the jobs still out for the old view are
cancelled (a queued one is dropped by the host, a running one stops before its pass) and a quick pass over
the tile averaged down to PREVIEW_SIDE fills the diagram, then the full pass follows. Nothing is loaded while
the dock is closed.
"""
from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, QRectF, Qt, QTimer
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QDockWidget, QFrame, QMessageBox, QScrollArea

from segstudio.core.model_fit import fed_definition
from segstudio.engine.inspect import probe_pixel
from segstudio.gui.inspector.controller import PREVIEW_SIDE
from segstudio.gui.inspector.panel import InspectorPanel
from segstudio.gui.inspector.render import region_box_item
from segstudio.gui.inspector.saving import InspectorSaving

# The view must rest this long before the maps follow it: a drag or a spin of the wheel asks once.
FOLLOW_DELAY_MS = 300


class SlideInspector(QObject):
    """One slide window's inspector dock, its menu entry, the region box and the jobs it has out."""

    def __init__(self, slide_window, host) -> None:
        super().__init__(slide_window)
        self.window, self.host = slide_window, host
        self.canvas = slide_window.canvas
        self.slide = slide_window.doc.slide
        self.lane = f"slide-{id(self)}"
        self.why_lane = self.lane + "/why"  # "why this pixel" is never dropped for a newer look at the view
        self.explanation = None
        self.description = None
        self.inspection = None
        self.preview = None  # the last quick pass shown in the diagram
        self.probe = None
        self.passes: list[tuple[str, tuple[int, int, int, int]]] = []  # ("preview"|"full", region) shown
        self._source = None
        self._asked_about = None
        self._generation = 0  # bumped per view: answers for an older view are ignored
        self._jobs: list = []  # ours, not finished yet
        self._probe_press = False
        self._why_job = None
        self._build_dock()
        self.region_item = region_box_item(self.canvas.scene())
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(FOLLOW_DELAY_MS)
        self._timer.timeout.connect(self.compute_for_view)
        self.canvas.view_changed.connect(self._view_moved)
        self.canvas.viewport().installEventFilter(self)
        slide_window.installEventFilter(self)  # its Close: the looks still queued are called off
        host.finished.connect(self._on_finished)
        host.failed.connect(self._on_failed)
        host.cancelled.connect(self._on_cancelled)
        host.selection_changed.connect(self._use_selection)
        self._use_selection(host.selected_model())

    def _build_dock(self) -> None:
        panel = self.panel = InspectorPanel()
        panel.set_wide(True)
        # The region is always the tile at the view's centre: no choice of how to fit a larger view.
        panel.large_combo.hide()
        panel.layout().itemAt(0).layout().insertStretch(3, 1)  # the buttons keep their size without the choice
        self.saving = InspectorSaving(self.window, panel, lambda: self.inspection, self._report_save_error)
        panel.compute_button.setToolTip("The maps follow the view on their own; this computes them now")
        panel.compute_requested.connect(self.compute_for_view)
        panel.size_combo.currentIndexChanged.connect(lambda _i: self._view_moved())  # a new size: new maps
        panel.channels.overlay_changed.connect(self._show_overlay)
        holder = QScrollArea()
        holder.setWidgetResizable(True)
        holder.setFrameShape(QFrame.Shape.NoFrame)
        holder.setWidget(panel)
        self.dock = QDockWidget("Network Inspector", self.window)
        self.dock.setObjectName("slideInspectorDock")
        self.dock.setWidget(holder)
        self.window.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.dock)
        self.dock.hide()
        self.dock.visibilityChanged.connect(self._on_visibility)
        self.show_action = self.dock.toggleViewAction()
        self.show_action.setText("&Look Inside the Network")
        self.show_action.setShortcut(QKeySequence("Ctrl+Shift+I"))
        self.show_action.setStatusTip("Feature maps of the selected model on the tile at the centre of the view")
        self.window.menuBar().addMenu("&Model").addAction(self.show_action)

    # --- model --------------------------------------------------------------------------------------
    def _use_selection(self, source) -> None:
        self._source, self.description, self._asked_about = source, None, None
        self._forget_result()
        self.panel.set_specs([])
        self.panel.set_model_text("No model selected: choose one in the main window's Model panel."
                                  if source is None else "Loading the model's taps…")
        self._describe_if_shown()

    def _describe_if_shown(self) -> None:
        if self._source is None or self._asked_about is self._source or self.dock.isHidden():
            return
        self._asked_about = self._source
        self.host.submit("describe", self._source, tag=self._source, lane=self.lane)

    def _on_visibility(self, _shown: bool) -> None:
        open_now = not self.dock.isHidden()
        self.region_item.setVisible(open_now and self.inspection is not None)
        if not open_now:
            self._timer.stop()
            self._cancel_jobs()
            self.canvas.set_heatmap(None)
            return
        self._describe_if_shown()
        if self.description is not None:
            self._timer.start()

    # --- following the view -------------------------------------------------------------------------
    def _view_moved(self) -> None:
        if self.description is not None and not self.dock.isHidden():
            self._timer.start()  # restarted by every step of a drag or a wheel spin

    def _fed(self) -> dict | None:
        """The input Predict feeds the model on this slide (the H&E path or the grey mean, as the user
        answered there), so the maps are of what the network is given; None: the model's own."""
        doc, description = self.window.doc, self.description
        feed = doc.feeds.get(doc.feed_key(self._source))
        if feed is None or description is None or description.in_channels != 1:
            return None
        return fed_definition(description.model_input, feed)

    def view_centre(self) -> tuple[float, float]:
        centre = self.canvas.mapToScene(self.canvas.viewport().rect().center())
        return (min(max(centre.x(), 0.0), self.slide.width - 1.0), min(max(centre.y(), 0.0), self.slide.height - 1.0))

    def compute_for_view(self) -> bool:
        """Maps for the tile at the view's centre: a quick pass first, the full one when it is back."""
        self._timer.stop()
        if self.description is None or self.dock.isHidden():
            return False
        self._cancel_jobs()
        self._generation += 1
        side = self.panel.region_cap()
        # By path: the looks read through a handle of their own, which the window's closing cannot pull away.
        request = {"slide_path": str(self.slide.path), "centre": self.view_centre(), "side": side,
                   "model_input": self._fed()}
        if side > PREVIEW_SIDE:
            self._submit(dict(request, preview_side=PREVIEW_SIDE), "preview", full=request)
        else:
            self._submit(request, "full")
        self.panel.set_busy(True)
        return True

    def _submit(self, request: dict, what: str, full: dict | None = None) -> None:
        job = self.host.submit("inspect", self._source, request=request, tag=(self._generation, what, full),
                               lane=self.lane)
        self._jobs.append(job)

    def _cancel_jobs(self) -> None:
        for job in self._jobs:
            job.cancel.set()
        self._jobs.clear()

    # --- answers ------------------------------------------------------------------------------------
    def _ours(self, job) -> bool:
        if job.lane not in (self.lane, self.why_lane):
            return False
        if job in self._jobs:
            self._jobs.remove(job)
        return True

    def _on_finished(self, job, result) -> None:
        if not self._ours(job):
            return
        if job.kind == "describe":
            if job.tag is self._source:
                self._described(result)
            return
        generation, what, full = job.tag
        if what == "explain":
            if job is self._why_job:
                self.explanation = result
                self.panel.why.set_explanation(result)
            return
        if generation != self._generation:
            return  # the view moved on since
        self.passes.append((what, result.region.rect))
        if what == "preview":
            self.preview = result
            self.panel.set_inspection(result, preview=True)
            self._submit(full, "full")
            return
        self.inspection, self.probe = result, None
        self.panel.set_inspection(result)
        self.panel.probe_chart.set_probe(None)
        self.region_item.setRect(QRectF(*result.region.rect))
        self.region_item.setVisible(not self.dock.isHidden())
        self.panel.set_region_text(f"Region {result.region.describe()}. It follows the view: pan or zoom and "
                                   "the maps are computed again for the new centre.")
        self.panel.set_busy(bool(self._jobs))

    def _described(self, description) -> None:
        self.description = description
        self.panel.set_specs(description.specs)
        self.panel.set_model_text(f"<b>{description.model_id}</b> ({description.arch}): "
                                  f"{len(description.specs)} taps, runs on {description.device}")
        self.compute_for_view()

    def _on_failed(self, job, message: str) -> None:
        if not self._ours(job):
            return
        self.panel.set_busy(bool(self._jobs))
        if job.kind == "describe":
            self.panel.set_model_text(f"This model's taps cannot be listed: {message}")
        elif job.lane == self.why_lane:
            self.panel.why.answer.setText(f"Why this pixel could not be worked out on {self.slide.path.name}: "
                                          f"{message}")
        else:
            self.panel.set_region_text(f"The maps could not be computed for {self.slide.path.name}: {message}",
                                       True)

    def _report_save_error(self, path, reason: str) -> None:
        box = QMessageBox(QMessageBox.Icon.Warning, "Cannot save", f"Cannot save {path}: {reason}",
                          QMessageBox.StandardButton.Ok, self.window)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()  # says why without blocking: the maps keep following the view

    def _on_cancelled(self, job) -> None:
        if self._ours(job):
            self.panel.set_busy(bool(self._jobs))

    def _forget_result(self) -> None:
        self._cancel_jobs()
        self.inspection = self.preview = self.probe = None
        self.region_item.setVisible(False)
        self.panel.set_region_text("No region computed yet.")

    # --- probe and overlay --------------------------------------------------------------------------
    def eventFilter(self, obj, event) -> bool:
        if event.type() == QEvent.Type.Close and obj is self.window:
            self._timer.stop()
            self._cancel_jobs()
            return False
        # Ctrl+click inside the box follows that pixel through the network (the Probe tab).
        if event.type() not in (QEvent.Type.MouseButtonPress, QEvent.Type.MouseButtonRelease) \
                or event.button() != Qt.MouseButton.LeftButton:
            return False
        if event.type() == QEvent.Type.MouseButtonRelease:
            swallowed, self._probe_press = self._probe_press, False
            return swallowed
        wanted = self.panel.probe_button.isChecked() or bool(event.modifiers() & Qt.KeyboardModifier.ControlModifier)
        if not wanted or self.inspection is None or self.dock.isHidden():
            return False
        point = self.canvas.mapToScene(event.position().toPoint())
        if not self.inspection.region.contains(point.x(), point.y()):
            self.window.statusBar().showMessage("Click inside the dashed box: the maps cover that tile", 5000)
            return False
        self._probe_press = True
        self.probe = probe_pixel(self.inspection, point.x(), point.y())
        self.panel.probe_chart.set_probe(self.probe)
        self.explain_at(int(point.x()), int(point.y()))
        return True

    def explain_at(self, x: int, y: int) -> None:
        """Why level-0 pixel (x, y) got its class (the Why tab; the Probe tab has its activations)."""
        self.explanation = None
        self.panel.why.set_waiting(x, y)
        self.panel.tabs.setCurrentIndex(self.panel.WHY_TAB)
        request = {"slide_path": str(self.slide.path), "explain": (x, y), "model_input": self._fed()}
        self._why_job = self.host.submit("inspect", self._source, request=request,
                                         tag=(self._generation, "explain", None), lane=self.why_lane)

    def _show_overlay(self, overlay) -> None:
        if overlay is None or self.dock.isHidden():
            self.canvas.set_heatmap(None)
            return
        values, lut, rect = overlay
        self.canvas.set_heatmap(values, lut, rect=rect)
