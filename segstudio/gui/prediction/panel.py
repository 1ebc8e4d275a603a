"""Model dock: which network pre-fills the mask, on which device, with which tiling; the Predict button."""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPushButton,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from segstudio.core.text import printable
from segstudio.core.words import count
from segstudio.gui.model_host import DEVICE_CHOICES
from segstudio.gui.prediction.colour_bar import ColourBar

OVERLAY_CHOICES = [("Mask", "mask"), ("Confidence", "confidence"), ("Uncertainty", "uncertainty")]


class ModelPanel(QWidget):
    predict_requested = Signal(bool)  # replace_all
    overlay_mode_changed = Signal(str)
    model_changed = Signal(str)
    input_choice_changed = Signal(int)  # index of the chosen channel entry
    input_fix_requested = Signal(int)  # a warning's fix button: the channel entry it selects
    map_opacity_changed = Signal(float)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("modelPanel")
        layout = QVBoxLayout(self)
        form = QFormLayout()
        self.model_combo = QComboBox()
        self.model_combo.setObjectName("modelCombo")
        self.model_combo.setToolTip("Bundled models and your own fine-tuned versions")
        self.model_combo.currentIndexChanged.connect(self._on_model_changed)
        form.addRow("Model", self.model_combo)
        self.model_info = QLabel("")
        self.model_info.setWordWrap(True)
        self.model_info.setObjectName("modelInfo")
        # Room for two wrapped lines: a form row does not grow on its own for a wrapping label.
        self.model_info.setMinimumHeight(2 * self.model_info.fontMetrics().lineSpacing() + 4)
        form.addRow(self.model_info)  # spans the row: a wrapped label gets the height it needs
        self._add_problems_row(form)
        self._add_input_rows(form)
        self.device_combo = QComboBox()
        for text, value in DEVICE_CHOICES:
            self.device_combo.addItem(text, value)
        form.addRow("Device", self.device_combo)
        self.tile_spin = QSpinBox()
        self.tile_spin.setRange(64, 4096)
        self.tile_spin.setSingleStep(64)
        self.tile_spin.setValue(512)
        self.tile_spin.setSuffix(" px")
        self.tile_spin.setToolTip("Large images are predicted in overlapping tiles of this size")
        form.addRow("Tile size", self.tile_spin)
        self.overlap_spin = QDoubleSpinBox()
        self.overlap_spin.setRange(0.0, 0.75)
        self.overlap_spin.setSingleStep(0.05)
        self.overlap_spin.setValue(0.25)
        self.overlap_spin.setToolTip("Fraction of each tile shared with its neighbours; overlaps are blended")
        form.addRow("Tile overlap", self.overlap_spin)
        layout.addLayout(form)
        # Under the form, just above Predict: a wrapped label in a form row does not grow to its text.
        layout.addWidget(self.input_warning)
        self.fix_row = QHBoxLayout()
        layout.addLayout(self.fix_row)
        self.fix_buttons: list[QPushButton] = []

        self.predict_button = QPushButton("Predict")
        self.predict_button.setObjectName("predictButton")
        self.predict_button.setToolTip("Pre-fill the mask; pixels you painted by hand are kept (Ctrl+P)")
        self.predict_button.clicked.connect(lambda: self.predict_requested.emit(self.replace_all.isChecked()))
        layout.addWidget(self.predict_button)
        self.replace_all = QCheckBox("Replace all (also overwrite pixels painted by hand)")
        self.replace_all.setObjectName("replaceAllCheck")
        layout.addWidget(self.replace_all)
        self.result_label = QLabel("")
        self.result_label.setObjectName("predictResult")
        self.result_label.setWordWrap(True)
        layout.addWidget(self.result_label)

        overlay_form = QFormLayout()
        self.overlay_combo = QComboBox()
        self.overlay_combo.setObjectName("overlayCombo")
        for text, value in OVERLAY_CHOICES:
            self.overlay_combo.addItem(text, value)
        self.overlay_combo.setEnabled(False)
        self.overlay_combo.setToolTip("Show the network's confidence or uncertainty over the image")
        self.overlay_combo.currentIndexChanged.connect(lambda _i: self.overlay_mode_changed.emit(self.overlay_mode()))
        self.map_opacity = QSlider(Qt.Orientation.Horizontal)
        self.map_opacity.setObjectName("mapOpacitySlider")
        self.map_opacity.setRange(0, 100)
        self.map_opacity.setValue(40)
        self.map_opacity.setToolTip("Opacity of the map: how strongly it covers the image")
        self.map_opacity.valueChanged.connect(lambda v: self.map_opacity_changed.emit(v / 100.0))
        show_row = QHBoxLayout()
        show_row.addWidget(self.overlay_combo, 3)
        show_row.addWidget(self.map_opacity, 2)  # beside the combo: the dock stays as short as it was
        overlay_form.addRow("Show", show_row)
        self.colour_bar = ColourBar()
        overlay_form.addRow(self.colour_bar)
        layout.addLayout(overlay_form)
        self._overlay_form = overlay_form
        self.show_legend(None)
        layout.addStretch(1)
        self._entries: dict[str, object] = {}

    def add_section(self, widget: QWidget) -> None:
        """Another feature's section, under what Predict found and above the map choice."""
        layout = self.layout()
        layout.insertWidget(layout.indexOf(self.result_label) + 1, widget)

    def _add_input_rows(self, form: QFormLayout) -> None:
        self.input_combo = QComboBox()
        self.input_combo.setObjectName("inputChannelCombo")
        self.input_combo.setToolTip("The image channel the model looks at when you press Predict")
        self.input_combo.activated.connect(self.input_choice_changed.emit)
        form.addRow("Image channel", self.input_combo)
        self.input_note = QLabel("")
        self.input_note.setObjectName("inputNote")
        self.input_note.setWordWrap(True)
        form.addRow(self.input_note)
        self.input_warning = QLabel("")
        self.input_warning.setObjectName("inputWarning")
        self.input_warning.setWordWrap(True)
        self.input_warning.setStyleSheet("QLabel { background: #fff3cd; color: #5c4400; padding: 4px; }")
        self.input_warning.setVisible(False)
        self.show_input([], 0, "Open an image to choose the channel the model sees.")

    # --- what the model is fed -----------------------------------------------------------------
    def show_input(self, labels: list[str], current: int, note: str) -> None:
        """The channel entries for the open image, the one in use, and why it is the default."""
        self.input_combo.clear()
        for label in labels:
            self.input_combo.addItem(label)
        if labels:
            self.input_combo.setCurrentIndex(current)
        self.input_combo.setEnabled(len(labels) > 1)
        self.input_note.setText(note)

    def input_index(self) -> int:
        return self.input_combo.currentIndex()

    def show_input_warnings(self, warnings: list[str], fixes: list[tuple[str, int | None]] = ()) -> None:
        """The warnings, and a button per fix: (text, channel entry it selects, or None to open the list)."""
        self.input_warning.setText("\n\n".join(warnings))
        self.input_warning.setVisible(bool(warnings))
        for button in self.fix_buttons:
            self.fix_row.removeWidget(button)
            button.deleteLater()
        self.fix_buttons = []
        for text, index in dict(fixes).items():
            button = QPushButton(text)
            button.setObjectName("inputFixButton")
            button.clicked.connect(lambda _=False, i=index: self._apply_fix(i))
            self.fix_row.addWidget(button)
            self.fix_buttons.append(button)

    def _apply_fix(self, index: int | None) -> None:
        if index is None:
            self.input_combo.setFocus()
            self.input_combo.showPopup()
            return
        self.input_combo.setCurrentIndex(index)
        self.input_fix_requested.emit(index)

    def show_result(self, text: str) -> None:
        self.result_label.setText(text)

    def show_legend(self, scale) -> None:
        """scale: (lut, caption, ticks) while a map is shown; None hides the legend and the map's opacity."""
        shown = scale is not None
        if shown:
            self.colour_bar.set_scale(*scale)
        self.map_opacity.setVisible(shown)
        self._overlay_form.setRowVisible(self.colour_bar, shown)

    def map_opacity_value(self) -> float:
        return self.map_opacity.value() / 100.0

    # --- models --------------------------------------------------------------------------------
    def set_models(self, entries, active_id: str | None) -> None:
        self.model_combo.blockSignals(True)
        self.model_combo.clear()
        self._entries = {}
        for entry in entries:
            meta = entry.meta
            origin = "bundled" if entry.bundled else "yours"
            self.model_combo.addItem(printable(f"{meta.name} v{meta.version} ({origin})"), entry.id)
            self._entries[entry.id] = entry
        index = self.model_combo.findData(active_id) if active_id else -1
        self.model_combo.setCurrentIndex(index if index >= 0 else 0)
        self.model_combo.blockSignals(False)
        self._on_model_changed()

    def _add_problems_row(self, form: QFormLayout) -> None:
        # Model files the library could not read: named here, so a bad file never hides silently.
        self.problems_note = QLabel("")
        self.problems_note.setObjectName("modelProblems")
        self.problems_note.setWordWrap(True)
        self.problems_note.setTextFormat(Qt.TextFormat.RichText)
        self.problems_note.linkActivated.connect(lambda _link: self.show_problem_details())
        self.problems_note.setVisible(False)
        self._problems: list = []
        form.addRow(self.problems_note)

    def show_problems(self, problems) -> None:
        """Note the unreadable model files (each "<file>: <reason>"); the readable ones stay listed."""
        self._problems = [printable(p) for p in problems]
        n = len(self._problems)
        self.problems_note.setVisible(n > 0)
        if not n:
            return
        noun = "model file" if n == 1 else "model files"
        self.problems_note.setText(f"⚠ {n} unreadable {noun} left out. <a href='details'>Details…</a>")
        self.problems_note.setToolTip("\n".join(self._problems[:10]) + (f"\n…and {n - 10} more" if n > 10 else ""))

    def show_problem_details(self) -> QMessageBox:
        box = QMessageBox(QMessageBox.Icon.Information, "Unreadable model files",
                          f"{count(len(self._problems), 'model file')} could not be used and "
                          f"{'is' if len(self._problems) == 1 else 'are'} not listed. The other models work as "
                          "usual.", QMessageBox.StandardButton.Close, self)
        box.setObjectName("modelProblemsDialog")
        box.setDetailedText("\n".join(self._problems))
        box.setInformativeText("\n".join(self._problems[:5]) + ("\n…" if len(self._problems) > 5 else ""))
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()
        return box

    def model_id(self) -> str | None:
        return self.model_combo.currentData()

    def selected_meta(self):
        """The chosen model's metadata (models.checkpoint.ModelMeta), None while there is none."""
        return self.meta_of(self.model_id())

    def meta_of(self, model_id: str | None):
        """The metadata of a model in the list (the chosen one or the one compared with it), or None."""
        entry = self._entries.get(model_id)
        return entry.meta if entry is not None else None

    def device(self) -> str:
        return self.device_combo.currentData()

    def overlay_mode(self) -> str:
        return self.overlay_combo.currentData()

    def _on_model_changed(self, *_args) -> None:
        entry = self._entries.get(self.model_id())
        if entry is None:
            self.model_info.setText("No model found. Fine-tune one or add a .safetensors file to the library.")
            self.predict_button.setEnabled(False)
            return
        meta = entry.meta
        classes = printable(", ".join(c["name"] for c in meta.classes if c["id"] != 0) or "-")
        lineage = f"from {printable(meta.parent)}" if meta.parent else "original"
        borders = "; draws the borders between touching objects" if (meta.objects or {}).get(
            "boundary_channel") is not None else ""
        self.model_info.setText(
            f"{meta.arch}, {count(meta.in_channels, 'input channel')}; classes: {classes}{borders}; {lineage}"
            + _score_words(meta.metrics)
        )
        self.predict_button.setEnabled(True)
        self.model_changed.emit(entry.id)

    def set_busy(self, busy: bool) -> None:
        self.predict_button.setEnabled(not busy and self.model_id() is not None)
        self.model_combo.setEnabled(not busy)
        self.device_combo.setEnabled(not busy)


def _score_words(metrics) -> str:
    """The model's stored score and what it was measured on: a bundled model's on generated test images
    (its card says which), a fine-tuned version's on the images its training held back."""
    score = metrics.get("mean_iou") if isinstance(metrics, dict) else None
    if not isinstance(score, (int, float)):
        return ""
    where = "generated test images" if "heldout" in metrics else "the images its training held back"
    return f"; overlap with the true mask (IoU) {score:.3f} on {where}"
