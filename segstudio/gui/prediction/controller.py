"""Connects the Model panel, the prediction worker and the open documents.

A finished prediction becomes one undoable step holding only the box it changed. Pixels the user
painted by hand are kept unless the user asked for "Replace all" (the rule is core.document's
Document.prediction_diff), so re-running Predict never destroys a correction.
"""
from __future__ import annotations

import importlib
import threading
import time

import numpy as np
from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import QFrame, QScrollArea, QWidget

from segstudio.core.document import ImageStatus
from segstudio.core.mask_summary import describe_summary, summarise_mask
from segstudio.core.model_fit import (
    default_model_input,
    expectation_of,
    fed_definition,
    input_advice,
    model_pixels,
    plan_input,
)
from segstudio.gui.prediction.colour_bar import colormap_lut
from segstudio.gui.prediction.compare import CompareController
from segstudio.gui.prediction.panel import ModelPanel
from segstudio.gui.progress import JobProgress

# Importing these pulls in torch (seconds). They are imported on a background thread so the window
# shows and responds at once; the model picker fills in when they are ready.
_ENGINE_MODULES = ("segstudio.models.library", "segstudio.engine.predict")


def _scrolling(panel: QWidget) -> QScrollArea:
    """The panel in a scroll area, so a warning or the map legend never pushes the window past the screen."""
    area = QScrollArea()
    area.setObjectName(panel.objectName() + "Scroll")
    area.setWidget(panel)
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.Shape.NoFrame)
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    # As tall as the panel without its warning and legend, so the dock keeps its usual share of the window,
    # up to a limit that leaves room for the other panels of the column on a 768-pixel screen.
    area.setMinimumHeight(min(panel.minimumSizeHint().height(), 240))
    # Never narrower than the panel (its rows would be cut at the right), room for a scroll bar included.
    area.setMinimumWidth(panel.minimumSizeHint().width() + area.verticalScrollBar().sizeHint().width())
    return area


def _reads_alike(meta, other) -> bool:
    """Two models take an image the same way (so a choice of channels or H&E path made for one fits both)."""
    kind = (getattr(meta, "input", None) or {}).get("kind")
    return meta.in_channels == other.in_channels and kind == (getattr(other, "input", None) or {}).get("kind")


class PredictionController(QObject):
    """The Model dock and Predict. Other features ask it, not its panel, which model is chosen."""

    engine_ready = Signal()
    model_changed = Signal(str)  # library id of the newly chosen model
    classes_offered = Signal(object)  # ClassTable of the model that just predicted
    _imported = Signal(str)

    def __init__(self, window) -> None:
        super().__init__(window)
        self.window = window
        self.panel = ModelPanel()
        self._scroll = _scrolling(self.panel)
        self.dock = window.add_panel(self._scroll, "Model")
        self.progress = JobProgress()
        window.statusBar().addWidget(self.progress)
        self.host = window.model_host
        self.library = None
        self.ready = False
        self.pending_model: str | None = None
        self.last_error: str | None = None
        self._plan = None  # core.model_fit.InputPlan for the open image and the chosen model
        self._expectation = None  # core.model_fit.ModelExpectation of the chosen model
        self._map_shown = False
        self._results: dict = {}  # document -> what its last Predict found, for the panel
        self.compare = CompareController(window, self)
        self.panel.add_section(self.compare.panel)

        self.panel.predict_requested.connect(self.predict)
        self.panel.overlay_mode_changed.connect(self._show_overlay)
        self.panel.model_changed.connect(self._on_model_changed)
        self.panel.input_choice_changed.connect(self._on_input_chosen)
        self.panel.input_fix_requested.connect(self._on_input_chosen)
        self.panel.map_opacity_changed.connect(window.canvas.heatmap_item.setOpacity)
        # While a map is shown the mask stays outlined, whatever the outline toggle says.
        window.actions.outline_mask.toggled.connect(lambda _on: self._map_shown and self._show_overlay(
            self.panel.overlay_mode()))
        self.panel.device_combo.currentIndexChanged.connect(lambda _i: self._select_in_host())
        self.progress.cancel_requested.connect(lambda: self.host.cancel("predict"))
        self.host.progress.connect(self._on_progress)
        self.host.finished.connect(self._on_finished)
        self.host.failed.connect(self._on_failed)
        self.host.cancelled.connect(self._on_cancelled)
        window.actions.predict.triggered.connect(lambda: self.predict(False))
        window.actions.predict_replace.triggered.connect(lambda: self.predict(True))
        window.document_changed.connect(self._on_document_changed)
        cancel_shortcut = QShortcut(QKeySequence(Qt.Key.Key_Escape), window)
        cancel_shortcut.setContext(Qt.ShortcutContext.WindowShortcut)
        cancel_shortcut.activated.connect(self._cancel_if_busy)
        self.panel.model_info.setText("Loading the model library...")
        self.panel.predict_button.setEnabled(False)
        self._imported.connect(self._on_engine_imported)
        threading.Thread(target=self._import_engine, name="engine-import", daemon=True).start()

    def _import_engine(self) -> None:
        error = ""
        try:
            for name in _ENGINE_MODULES:
                importlib.import_module(name)
        except Exception as err:  # shown in the panel; the rest of the window still works
            error = f"{type(err).__name__}: {err}"
        self._imported.emit(error)  # queued to the GUI thread

    def _on_engine_imported(self, error: str) -> None:
        if error:
            self.panel.model_info.setText(f"Prediction is unavailable: {error}")
            return
        self.ready = True
        self.reload_models(select=self.pending_model)
        self.engine_ready.emit()

    # --- models --------------------------------------------------------------------------------
    def reload_models(self, select: str | None = None) -> None:
        from segstudio.models.library import ModelLibrary

        try:
            self.library = ModelLibrary()
            entries = self.library.entries()
            active = select or self.library.active_id()
        except Exception as err:  # a broken model file must not stop the window
            entries, active = [], None
            self.window.show_error("Model library", f"The model library could not be read: {err}")
        self.panel.set_models(entries, active)
        self.compare.panel.set_models(entries, self.panel.model_id())
        self.panel.show_problems(getattr(self.library, "problems", []))
        self._select_in_host()
        self._update_enabled()

    def model_id(self) -> str | None:
        """Library id of the chosen model, None while the library is empty or loading."""
        return self.panel.model_id()

    def device(self) -> str:
        return self.panel.device()

    def has_models(self) -> bool:
        return self.panel.model_combo.count() > 0

    def _on_model_changed(self, model_id: str) -> None:
        self._select_in_host()
        self._refresh_input()
        self.model_changed.emit(model_id)

    def _select_in_host(self) -> None:
        self.host.select(self.panel.model_id(), self.panel.device())
        self._warm_on_gpu()

    def _warm_on_gpu(self) -> None:
        """On a GPU, load the chosen model and run it once now: the first Predict then takes a moment
        instead of waiting for the device to start. A CPU is left alone (nothing to gain, cores to keep)."""
        from segstudio.engine.devices import DeviceUnavailableError, pick_device
        from segstudio.engine.predict import PredictSettings

        if not self.ready or self.panel.model_id() is None:
            return
        try:
            if pick_device(self.panel.device()).type == "cpu":
                return
        except DeviceUnavailableError:
            return  # Predict will say why
        self.host.submit("warm_up", settings=PredictSettings(tile=self.panel.tile_spin.value(),
                                                          device=self.panel.device()))

    def select_model(self, ref: str) -> bool:
        if self.library is None:
            self.pending_model = ref  # chosen once the library has loaded
            return False
        try:
            entry = self.library.find(ref)
        except ValueError as err:
            self.window.show_error("Unknown model", str(err))
            return False
        index = self.panel.model_combo.findData(entry.id)
        if index >= 0:
            self.panel.model_combo.setCurrentIndex(index)
        return index >= 0

    # --- predict -------------------------------------------------------------------------------
    def predict(self, replace_all: bool = False) -> None:
        doc = self.window.current
        model_id = self.panel.model_id()
        if doc is None or model_id is None or self.host.busy("predict"):
            return
        if doc.read_only is not None:
            self.window.statusBar().showMessage(f"Predict did not run: {doc.title} is read-only here: "
                                                f"{doc.read_only}", 15000)
            return
        self.submit_predict(doc, model_id, replace_all=replace_all)
        self.progress.start(f"Predicting {doc.title}")
        self._update_enabled()

    def submit_predict(self, doc, model_id: str, **extra) -> None:
        """Queue a prediction of `doc` by `model_id` with the panel's settings and the image's chosen input."""
        from segstudio.engine.predict import PredictSettings

        settings = PredictSettings(
            tile=self.panel.tile_spin.value(), overlap=self.panel.overlap_spin.value(), device=self.panel.device()
        )
        meta, chosen = self.panel.meta_of(model_id), self.panel.selected_meta()
        if meta is None or chosen is None or _reads_alike(meta, chosen):  # the image's choice for the chosen model
            pixels = model_pixels(doc.image.pixels, doc.model.model_channels)
            settings.model_input = fed_definition(getattr(meta, "input", None), doc.model.model_stain)
        else:  # a compared model that reads images otherwise: fed as the panel would feed it by default
            pixels, settings.model_input, _ = default_model_input(doc.image.pixels, doc.image.meta.channel_names,
                                                                  meta)
        self.host.submit("predict", model_id, device=self.panel.device(), pixels=pixels, settings=settings, tag=doc,
                         started=time.monotonic(), **extra)

    def _on_progress(self, job, done: int, total: int) -> None:
        if job.kind == "predict":
            self.progress.update_progress(done, total)

    def _on_finished(self, job, result) -> None:
        if job.kind != "predict" or job.extra.get("compare"):
            return  # a comparison's prediction never reaches the mask (gui.prediction.compare)
        self.progress.finish()
        doc = job.tag
        if doc in self.window.documents:
            self._adopt_model_classes(job.extra.get("model_classes"))
            self._apply(doc, result, job.extra.get("replace_all", False), job.model)
            self._report(doc, time.monotonic() - job.extra.get("started", time.monotonic()), result.notes,
                         job.extra.get("object_counts"))
        elif result.notes:
            self.window.statusBar().showMessage("; ".join(result.notes), 10000)
        self._update_enabled()

    def _report(self, doc, seconds: float, notes, counts=None) -> None:
        """Say what Predict found, as the mask now holds it (pixels painted by hand included): objects split
        along the model's borders when it has a border output and the mask is its answer, else patches."""
        if counts is not None and not np.array_equal(doc.mask, doc.prediction.labels):
            counts = None  # pixels painted by hand were kept: count the mask's own patches
        found = describe_summary(summarise_mask(doc.mask, doc.classes, counts))
        text = f"Predicted {found} in {seconds:.1f} s"
        if found == "nothing":
            text = f"Predict found nothing in {doc.title} ({seconds:.1f} s): the mask is empty"
        self._results[doc] = text
        if doc is self.window.current:
            self.panel.show_result(text)
        self.window.statusBar().showMessage("; ".join([text, *notes]), 15000)

    def _adopt_model_classes(self, classes) -> None:
        """Give every class the model predicts a name and colour, so no predicted pixel is invisible."""
        if not classes:
            return
        from segstudio.core.labels import ClassTable

        try:
            table = ClassTable.from_list(classes)
        except ValueError:
            return  # a model with a malformed class list still predicts; ids show with default colours
        self.classes_offered.emit(table)

    def _apply(self, doc, result, replace_all: bool, model_ref: str) -> None:
        diff = doc.model.prediction_diff(result.labels, replace_all=replace_all)
        self.compare.record(doc, model_ref, result.labels)
        doc.prediction = result
        doc.model_version = model_ref
        if diff is not None:
            doc.push_diff(diff, "Predict" + (" (replace all)" if replace_all else ""))
        if doc.status == ImageStatus.NEW:
            doc.set_status(ImageStatus.PREDICTED)
        if doc is self.window.current:
            self._show_overlay(self.panel.overlay_mode())

    def _on_failed(self, job, message: str) -> None:
        if job.kind != "predict":
            return
        self.progress.finish()
        self.last_error = message
        self.window.show_error("Prediction failed", f"Predicting {job.tag.title} failed.\n\n{message}")
        self._update_enabled()

    def _on_cancelled(self, job) -> None:
        if job.kind != "predict":
            return
        self.progress.finish()
        self.window.statusBar().showMessage(f"Prediction of {job.tag.title} cancelled; the mask is unchanged.", 6000)
        self._update_enabled()

    def _cancel_if_busy(self) -> None:
        if self.host.busy("predict"):
            self.progress.request_cancel()

    # --- view ----------------------------------------------------------------------------------
    def _show_overlay(self, mode: str) -> None:
        """The mask, or a confidence/uncertainty map over the image with the mask drawn as outlines above it."""
        canvas = self.window.canvas
        doc = self.window.current
        result = doc.prediction if doc is not None else None
        if result is None or mode == "mask":
            canvas.set_heatmap(None)
            if self._map_shown:
                canvas.overlay.setZValue(1)
                canvas.overlay.set_outline_only(self.window.actions.outline_mask.isChecked())
            self._map_shown = False
            self.panel.show_legend(None)
            return
        if mode == "confidence":
            lut = colormap_lut("viridis")
            values = result.confidence.astype(np.float32)
            scale = (lut, "confidence, %", ["0", "100"],
                     "How sure the model is of the class it gave each pixel, in percent. With two classes "
                     "50% is a coin toss.")
        else:
            lut = colormap_lut("inferno")
            values = result.uncertainty.astype(np.float32)
            scale = (lut, "uncertainty", ["0", "1"],
                     "How undecided the model is between the classes: 0 sure, 1 no preference at all.")
        canvas.set_heatmap(values, lut)
        canvas.heatmap_item.setOpacity(self.panel.map_opacity_value())
        # The mask's fill would mix its colours into the map's: show its outlines, above the map.
        canvas.overlay.set_outline_only(True)
        canvas.overlay.setZValue(canvas.heatmap_item.zValue() + 1)
        self._map_shown = True
        self.panel.show_legend(scale)
        self._scroll.ensureWidgetVisible(self.panel.colour_bar)

    def _on_document_changed(self, doc) -> None:
        self._show_overlay(self.panel.overlay_mode())
        self._results = {d: text for d, text in self._results.items() if d in self.window.documents}
        self.panel.show_result(self._results.get(doc, ""))
        self._refresh_input()
        self._update_enabled()

    # --- what the model is fed -----------------------------------------------------------------
    def refresh_input(self) -> None:
        """Show the current image's model-input choice again (a project or session has just restored it)."""
        self._refresh_input()

    def _refresh_input(self) -> None:
        """Offer the open image's channels for the chosen model, with the default and any mismatch warning."""
        doc = self.window.current
        meta = self.panel.selected_meta()
        if doc is None or meta is None:
            self._plan = None
            self.panel.show_input([], 0, "Open an image to choose the channel the model sees."
                                  if doc is None else "")
            self.panel.show_input_warnings([])
            return
        names = [c.get("name", "") for c in meta.classes]
        self._expectation = expectation_of(meta.in_channels, getattr(meta, "expects", None), meta.description, names)
        image = doc.image
        self._plan = plan_input(image.channels, image.meta.channel_names, self._expectation, meta.input)
        channels = [(c.channels, c.stain) for c in self._plan.choices]
        chosen = (doc.model.model_channels, doc.model.model_stain)
        if doc.model.model_channels_chosen and chosen in channels:
            index, note = channels.index(chosen), "Your choice for this image."
        else:
            index, note = self._plan.default, self._plan.reason[:1].upper() + self._plan.reason[1:] + "."
        self.panel.show_input([c.label for c in self._plan.choices], index, note)
        self._use_choice(doc, index)

    def _on_input_chosen(self, index: int) -> None:
        doc = self.window.current
        if doc is None or self._plan is None or not 0 <= index < len(self._plan.choices):
            return
        doc.model.model_channels_chosen = True
        self.panel.input_note.setText("Your choice for this image.")
        self._use_choice(doc, index)

    def _use_choice(self, doc, index: int) -> None:
        choice = self._plan.choices[index]
        doc.model.model_channels = choice.channels
        doc.model.model_stain = choice.stain
        advice = input_advice(doc.image.pixels, doc.image.meta.channel_names, choice, self._expectation, self._plan)
        self.panel.show_input_warnings([a.text for a in advice], [(a.fix, a.choice) for a in advice if a.fix])

    def update_enabled(self) -> None:
        self._update_enabled()

    def _update_enabled(self) -> None:
        busy = self.host.busy("predict")
        ready = self.window.current is not None and self.panel.model_id() is not None and not busy
        self.window.actions.predict.setEnabled(ready)
        self.window.actions.predict_replace.setEnabled(ready)
        self.panel.set_busy(busy)
        self.panel.predict_button.setEnabled(ready)
        self.panel.overlay_combo.setEnabled(
            self.window.current is not None and self.window.current.prediction is not None
        )
        self.compare.update_enabled()
