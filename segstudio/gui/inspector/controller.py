"""Connects the inspector dock to the window: the selected model, the canvas view, probe clicks,
the model host's thread and the overlay on the image.

Taps are only ever computed for a bounded region (the view, or a window around a clicked pixel), never for
a whole large image, and only when the user asks: moving the view marks the result as out of date.
Nothing is loaded for a hidden inspector: the model's taps are listed when the dock is first shown.
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QEvent, QObject, QRectF, Qt, QTimer
from PySide6.QtGui import QAction, QColor, QKeySequence, QPainterPath, QPen
from PySide6.QtWidgets import QDockWidget, QFrame, QGraphicsPathItem, QScrollArea

from segstudio.core.model_fit import fed_definition, model_pixels
from segstudio.engine.inspect import Inspection, probe_pixel
from segstudio.gui.inspector.panel import InspectorPanel
from segstudio.gui.inspector.render import region_box_item
from segstudio.gui.inspector.saving import InspectorSaving
from segstudio.gui.model_host import ModelDescription

# A view larger than this gets a quick pass at this size first (about 0.1 s for the bundled U-Net on a
# two-core CPU, against 2-3 s for 512 x 512), so the diagram's maps show while the full pass runs.
PREVIEW_SIDE = 192
# The model host's lane of this window's looks (each slide window's inspector has its own).
LANE = ""


class InspectorController(QObject):
    def __init__(self, window) -> None:
        super().__init__(window)
        self.window = window
        self.canvas = window.canvas
        self.panel = InspectorPanel()
        # Scrolls rather than forcing the window taller than a laptop screen.
        holder = QScrollArea()
        holder.setObjectName("inspectorPanel")
        holder.setWidgetResizable(True)
        holder.setFrameShape(QFrame.Shape.NoFrame)
        holder.setWidget(self.panel)
        # Feature maps need width and the editing docks need the right-hand column, so the inspector lives
        # along the bottom, hidden until asked for (Model > Look Inside the Network, Ctrl+Shift+I).
        self.dock = window.add_panel(holder, "Network Inspector", Qt.DockWidgetArea.BottomDockWidgetArea)
        self.dock.dockLocationChanged.connect(self._on_dock_moved)
        self.panel.set_wide(True)
        self.dock.hide()
        # Checkable: the same menu entry and Ctrl+Shift+I open and close it, and the menu shows which.
        self.show_action = QAction("&Look Inside the Network", window)
        self.show_action.setCheckable(True)
        self.show_action.setShortcut(QKeySequence("Ctrl+Shift+I"))
        self.show_action.setStatusTip("Feature maps and skip connections of the selected model on this image")
        self.show_action.triggered.connect(self.toggle_dock)
        window.menus["model"].addAction(self.show_action)
        window.actions.register(self.show_action)
        self.host = window.model_host
        self.description: ModelDescription | None = None
        self.inspection: Inspection | None = None
        self.probe = None
        self.last_error: str | None = None
        self._source = None  # library id, or a (model, meta) pair given to use_model()
        self._asked_about = None  # the source whose taps were last asked for
        self._requested_view = None
        self._pending_probe: tuple[float, float] | None = None
        self._after_preview: dict | None = None  # the full request that follows a preview pass
        self.explanation = None  # engine.inspect_why.Explanation of the last clicked pixel
        self._probe_press = False
        self._withdrawn = True  # the dock starts closed, so nothing of it is on the image
        self._heatmap_key: int | None = None  # the canvas pixmap of the channel overlay this inspector shows

        self.region_item = region_box_item(self.canvas.scene())
        self.probe_item = QGraphicsPathItem()
        marker = QPen(QColor(255, 60, 200), 0)
        marker.setCosmetic(True)
        marker.setWidthF(2.0)
        self.probe_item.setPen(marker)
        self.probe_item.setZValue(6)
        self.probe_item.setVisible(False)
        self.canvas.scene().addItem(self.probe_item)

        self.panel.compute_requested.connect(self.compute_for_view)
        self.panel.probe_mode_toggled.connect(self._on_probe_mode)
        self.panel.channels.overlay_changed.connect(self._show_overlay)
        self.saving = InspectorSaving(window, self.panel, lambda: self.inspection, self._report_save_error)
        self.dock.visibilityChanged.connect(self._on_dock_visibility)
        self.host.finished.connect(self._on_host_finished)
        self.host.failed.connect(self._on_failed)
        self.host.cancelled.connect(lambda job: self._update_enabled())
        window.document_changed.connect(self._on_document_changed)
        self.canvas.zoom_changed.connect(lambda _z: self._mark_if_stale())
        self.canvas.horizontalScrollBar().valueChanged.connect(lambda _v: self._mark_if_stale())
        self.canvas.verticalScrollBar().valueChanged.connect(lambda _v: self._mark_if_stale())
        self.canvas.viewport().installEventFilter(self)
        self.host.selection_changed.connect(self._on_model_changed)
        if self.host.selected_model() is not None:
            self._on_model_changed(self.host.selected_model())
        self._update_enabled()

    # --- model ---------------------------------------------------------------------------------

    def _on_dock_visibility(self, shown: bool) -> None:
        if shown:
            self._describe_if_shown()
        else:
            self.panel.probe_button.setChecked(False)
        # visibilityChanged(False) also comes when the dock is only tabbed behind another one; what the
        # inspector drew on the image goes only when the dock is closed, and comes back when it reopens.
        self.show_action.setChecked(self.is_open())
        if self.is_open() and self._withdrawn:
            self._restore_drawings()
        elif not self.is_open() and not self._withdrawn:
            self._withdraw_drawings()

    def is_open(self) -> bool:
        """Open (possibly behind another dock's tab), as opposed to closed by the user."""
        return not self.dock.isHidden()

    def toggle_dock(self) -> None:
        """Model > Look Inside the Network (Ctrl+Shift+I): open it, bring it to the front, or close it."""
        if self.dock_in_sight():
            self.dock.close()
        else:
            self.show_dock()
        self.show_action.setChecked(self.is_open())

    def _on_dock_moved(self, area) -> None:
        self.panel.set_wide(area in (Qt.DockWidgetArea.BottomDockWidgetArea, Qt.DockWidgetArea.TopDockWidgetArea))

    def show_dock(self) -> None:
        """Show the inspector along the bottom with room for the maps."""
        first_time = not self.dock.isVisible()
        along = (Qt.DockWidgetArea.BottomDockWidgetArea, Qt.DockWidgetArea.TopDockWidgetArea)
        if first_time and not self.dock.isFloating() and self.window.dockWidgetArea(self.dock) in along:
            self._share_row_as_tab()
        self.dock.show()
        self.dock.raise_()
        if first_time and not self.dock.isFloating() and self.window.dockWidgetArea(self.dock) in along:
            # After the dock has been laid out once, or Qt keeps its minimum height.
            QTimer.singleShot(0, lambda: self.window.resizeDocks(
                [self.dock], [max(300, int(self.window.height() * 0.6))], Qt.Orientation.Vertical))
    def attach_slide(self, slide_window) -> None:
        """Give a whole-slide window its own inspector, which follows that window's view."""
        from segstudio.gui.inspector.slide import SlideInspector

        slide_window.inspector = SlideInspector(slide_window, self.host)

    def _share_row_as_tab(self) -> None:
        """Another panel open along the same edge (Objects, Training) becomes a tab beside the inspector
        rather than taking half its width: the diagram and the maps need the whole row."""
        window = self.window
        area, tabs = window.dockWidgetArea(self.dock), window.tabifiedDockWidgets(self.dock)
        for other in window.findChildren(QDockWidget):
            if other is not self.dock and other.isVisible() and not other.isFloating() \
                    and window.dockWidgetArea(other) == area and other not in tabs:
                window.tabifyDockWidget(other, self.dock)
                return

    def _device(self) -> str:
        return self.host.device()

    def _on_model_changed(self, model_id: str | None) -> None:
        if model_id is not None:
            self.use_model(model_id)

    def use_model(self, source) -> None:
        """Inspect a library model (id, family name or path) or a ready (nn.Module, ModelMeta | None) pair."""
        self._source = source
        self.description = None
        self._clear_result()
        self.panel.set_specs([])
        self.panel.set_model_text("Loading the model's taps…")
        self._asked_about = None
        self._describe_if_shown()

    def _describe_if_shown(self) -> None:
        # Listing the taps loads the model: only for an inspector the user has opened.
        if self._source is None or self._asked_about is self._source or not self.dock.isVisible():
            return
        self._asked_about = self._source
        self.host.submit("describe", self._source, device=self._device(), tag=self._source)

    def _on_host_finished(self, job, result) -> None:
        if job.lane != LANE:
            return  # a slide window's inspector
        if job.kind == "describe":
            self._on_described(job, result)
        elif job.kind == "inspect" and len(job.tag) == 3:
            self._on_quick_finished(job, result)
        elif job.kind == "inspect":
            self._on_finished(job, result)

    def _on_described(self, job, description: ModelDescription) -> None:
        if job.tag is not self._source:
            return
        self.description = description
        self.panel.set_specs(description.specs)
        self.panel.set_model_text(
            f"<b>{description.model_id}</b> ({description.arch}): {len(description.specs)} taps, "
            f"input a multiple of {description.stride} px, runs on {description.device}")
        self._update_enabled()

    # --- computing -----------------------------------------------------------------------------
    def _pixels(self):
        doc = self.window.current
        if doc is None:
            return None
        return model_pixels(doc.image.pixels, doc.model.model_channels)  # what Predict feeds the model

    def compute_for_view(self) -> bool:
        view = self.canvas.visible_image_rect()
        if view is None or self.description is None:
            return False
        self._requested_view = view
        return self._request(view=view, max_side=self.panel.region_cap(), mode=self.panel.large_view_mode())

    def compute_around(self, x: float, y: float) -> bool:
        """Taps for a window (the region cap on a side) centred on image pixel (x, y)."""
        self._requested_view = self.canvas.visible_image_rect()
        return self._request(point=(x, y), max_side=self.panel.region_cap())

    def _request(self, **request) -> bool:
        pixels = self._pixels()
        if pixels is None or self.description is None:
            return False
        view = request.get("view")
        if view is not None and max(view[2], view[3]) > PREVIEW_SIDE and request.get("max_side", 0) > PREVIEW_SIDE:
            # First a quick pass at reduced resolution, so the diagram shows maps within a second; the full
            # pass is asked for when it is back (asking now would drop it: the host keeps the newest look).
            self._after_preview = dict(request)
            self._submit_quick(pixels, {"view": view, "max_side": PREVIEW_SIDE, "mode": "downsample"}, "preview")
        else:
            self._submit_full(pixels, request)
        self._update_enabled()
        return True

    def _submit_full(self, pixels, request: dict) -> None:
        self._after_preview = None
        self.host.submit("inspect", self._source, device=self._device(), pixels=pixels,
                         request={**request, **self._input_request()}, tag=(self.window.current, self._source))

    def _submit_quick(self, pixels, request: dict, what: str) -> None:
        self.host.submit("inspect", self._source, device=self._device(), pixels=pixels,
                         request={**request, **self._input_request()}, tag=(self.window.current, self._source, what))

    def _input_request(self) -> dict:
        """The image fed as Predict feeds it: the H&E path, or the channels chosen for a model that picks its own."""
        doc = self.window.current
        definition = None if doc is None else fed_definition(getattr(self.description, "model_input", None),
                                                             doc.model.model_stain)
        return {} if definition is None else {"model_input": definition}

    def _on_quick_finished(self, job, result) -> None:
        """A preview pass (then the full one is asked for) or the answer to "why this pixel"."""
        doc, source, what = job.tag
        if doc is not self.window.current or source is not self._source:
            self._update_enabled()
            return
        if what == "preview":
            self.panel.set_inspection(result, preview=True)
            pixels, request = self._pixels(), self._after_preview
            if pixels is not None and request is not None and not self.host.busy("inspect", lane=LANE):
                self._submit_full(pixels, request)
        elif what == "explain" and not self.host.busy("inspect", lane=LANE):
            self.explanation = result
            self.panel.why.set_explanation(result)
        self._update_enabled()

    def explain_at(self, x: float, y: float) -> bool:
        """Ask why pixel (x, y) got its class (answered in the Why tab)."""
        pixels = self._pixels()
        if pixels is None or self.description is None:
            return False
        self.explanation = None
        self.panel.why.set_waiting(int(x), int(y))
        self.panel.tabs.setCurrentIndex(self.panel.WHY_TAB)
        self._submit_quick(pixels, {"explain": (int(x), int(y))}, "explain")
        self._update_enabled()
        return True

    def _on_finished(self, job, inspection: Inspection) -> None:
        self._update_enabled()
        doc, source = job.tag
        if doc is not self.window.current or source is not self._source or self.host.busy("inspect", lane=LANE):
            return  # a newer request is on its way, or the user moved on
        self.inspection = inspection
        self.panel.set_inspection(inspection)
        x, y, w, h = inspection.region.rect
        self.region_item.setRect(QRectF(x, y, w, h))
        self.region_item.setVisible(self.is_open())
        self._mark_if_stale()
        if self._pending_probe is not None:
            px, py = self._pending_probe
            self._pending_probe = None
            if inspection.region.contains(px, py):
                self.probe_at(px, py)

    def _on_failed(self, job, message: str) -> None:
        if job.kind not in ("describe", "inspect") or job.lane != LANE:
            return
        self._update_enabled()
        self.last_error = message
        if job.kind == "describe":
            self.panel.set_model_text(f"This model's taps cannot be listed: {message}")
            return
        self._pending_probe = None
        self.window.show_error("Network inspector", f"The taps could not be computed.\n\n{message}")

    def _region_text(self) -> str:
        inspection = self.inspection
        text = f"Region {inspection.region.describe()}. {inspection.nbytes / 2**20:.1f} MB of maps"
        text += f" on {inspection.device}."
        if inspection.notes:
            text += " " + " ".join(inspection.notes)
        return text

    def _mark_if_stale(self) -> None:
        if self.inspection is None:
            return
        view = self.canvas.visible_image_rect()
        stale = view is not None and view != self._requested_view and self.inspection.region.how != "around point"
        text = self._region_text()
        if stale:
            text += " The view has moved since: press Compute for view to follow it."
        self.panel.set_region_text(text, stale)

    # --- probe ---------------------------------------------------------------------------------
    def _on_probe_mode(self, on: bool) -> None:
        if on:
            self.canvas.viewport().setCursor(Qt.CursorShape.CrossCursor)
            self.window.statusBar().showMessage("Probe: click a pixel to see its activations through the network.",
                                                6000)
        else:
            self.canvas.viewport().unsetCursor()

    def probe_at(self, x: float, y: float) -> None:
        """Show pixel (x, y)'s activations; outside the computed region, compute a window around it first."""
        if self.inspection is not None and self.inspection.region.contains(x, y):
            self.probe = probe_pixel(self.inspection, x, y)
            self.panel.probe_chart.set_probe(self.probe)
            self._mark_probe(int(x), int(y))
            self.panel.tabs.setCurrentIndex(2)
            self.explain_at(x, y)
            return
        if self.compute_around(x, y):
            self._pending_probe = (x, y)

    def eventFilter(self, obj, event) -> bool:
        # Test the event type first: while the window is torn down the canvas may already be gone.
        if event.type() in (QEvent.Type.MouseButtonPress, QEvent.Type.MouseButtonRelease) \
                and obj is self.canvas.viewport():
            if event.button() != Qt.MouseButton.LeftButton:
                return False
            if event.type() == QEvent.Type.MouseButtonRelease:
                # The press went to the probe, so its release must not reach the tool under it.
                swallowed, self._probe_press = self._probe_press, False
                return swallowed
            ctrl = bool(event.modifiers() & Qt.KeyboardModifier.ControlModifier)
            # Only while the dock is in sight: a hidden inspector must not take clicks from the editing tools.
            wanted = self.panel.probe_button.isChecked() or ctrl
            if wanted and self.description is not None and self.dock_in_sight():
                pixel = self.canvas.image_pixel(self.canvas.mapToScene(event.position().toPoint()))
                if pixel is not None:
                    self._probe_press = True
                    self.probe_at(*pixel)
                    return True
        return False

    def dock_in_sight(self) -> bool:
        # A dock behind another tab still reports isVisible(); its visible region is what tells.
        return self.dock.isVisible() and not self.dock.visibleRegion().isEmpty()

    def _mark_probe(self, x: int, y: int) -> None:
        """A ring around the probed pixel with ticks, legible at any zoom (sized in image pixels)."""
        reach = max(3.0, 12.0 / max(self.canvas.zoom(), 1e-6))
        cx, cy = x + 0.5, y + 0.5
        path = QPainterPath()
        path.addRect(QRectF(x, y, 1, 1))
        for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            path.moveTo(cx + dx * reach * 0.4, cy + dy * reach * 0.4)
            path.lineTo(cx + dx * reach, cy + dy * reach)
        self.probe_item.setPath(path)
        self.probe_item.setVisible(self.is_open())

    # --- overlay -------------------------------------------------------------------------------
    def _show_overlay(self, overlay) -> None:
        if overlay is None:
            self._take_down_heatmap()
            return
        if not self.is_open():
            return
        values, lut, rect = overlay
        self.canvas.set_heatmap(values, lut, rect=rect)
        self._heatmap_key = self.canvas.heatmap_item.pixmap().cacheKey()

    def _take_down_heatmap(self) -> None:
        # Only the map this inspector put up: the Model panel may have shown its confidence map since.
        item = self.canvas.heatmap_item
        if self._heatmap_key is not None and item.pixmap().cacheKey() == self._heatmap_key:
            self.canvas.set_heatmap(None)
        self._heatmap_key = None

    def _withdraw_drawings(self) -> None:
        """Closing the inspector takes its region box, probe marker and channel overlay off the image."""
        self._withdrawn = True
        self.region_item.setVisible(False)
        self.probe_item.setVisible(False)
        self._take_down_heatmap()

    def _restore_drawings(self) -> None:
        self._withdrawn = False
        self.region_item.setVisible(self.inspection is not None)
        self.probe_item.setVisible(self.probe is not None)
        self.panel.channels.show_overlay_again()

    # --- export --------------------------------------------------------------------------------
    def save_view_png(self, path: str | Path | None = None) -> Path | None:
        """The dock as it looks now, as a PNG (asks where when no path is given)."""
        return self.saving.save_view_png(path)

    def save_tap(self, path: str | Path | None = None, name: str | None = None) -> Path | None:
        """The chosen tap's tensor as .npy or TIFF (asks where when no path is given)."""
        return self.saving.save_tap(path, name)

    @property
    def last_saved(self) -> Path | None:
        return self.saving.last_saved

    def _report_save_error(self, path: Path, reason: str) -> None:
        self.last_error = reason
        self.window.show_error("Cannot save", f"Cannot save {path}: {reason}")

    # --- housekeeping --------------------------------------------------------------------------
    def _clear_result(self) -> None:
        self.inspection = None
        self.probe = None
        self._pending_probe = None
        self.region_item.setVisible(False)
        self.probe_item.setVisible(False)
        self.panel.set_inspection(None)
        self.panel.probe_chart.set_probe(None)
        self.panel.set_region_text("No region computed yet.")

    def _on_document_changed(self, _doc) -> None:
        self._clear_result()
        self._update_enabled()

    def _update_enabled(self) -> None:
        busy = self.host.busy("inspect", lane=LANE)
        self.panel.set_busy(busy)
        ready = self.window.current is not None and self.description is not None
        self.panel.compute_button.setEnabled(ready and not busy)
