"""Model > Fine-tune...: what to train on and how.

The form starts from TrainConfig's defaults (engine.training.config, which imports no torch) or from what
the user chose last time, and its result is a TrainConfig, so the window states no training default of
its own.
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings, Qt
from PySide6.QtGui import QValidator
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QRadioButton,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
)

from segstudio.engine.training.config import (
    GUESSED_SECONDS_PER_PIXEL,
    PRESETS,
    TrainConfig,
    default,
    estimate_seconds,
    preset,
)
from segstudio.gui.model_host import DEVICE_CHOICES
from segstudio.gui.settings import LAST_DATASET_KEY

SETTINGS_PREFIX = "finetune/"
STEP_TIME_PREFIX = SETTINGS_PREFIX + "seconds_per_pixel/"


def step_time_key(arch: str, device: str) -> str:
    """Where the measured training time per pixel of an architecture on a device choice is kept."""
    return f"{STEP_TIME_PREFIX}{arch}/{device}"


def remember_step_time(arch: str, device: str, seconds_per_pixel: float) -> None:
    if seconds_per_pixel > 0:
        QSettings().setValue(step_time_key(arch, device), float(seconds_per_pixel))


def seconds_per_pixel(arch: str, device: str) -> tuple[float, bool]:
    """(seconds per training pixel, measured on this computer?) for the estimate before a run."""
    try:
        measured = float(QSettings().value(step_time_key(arch, device), 0.0))
    except (TypeError, ValueError):
        measured = 0.0
    if measured > 0:
        return measured, True
    return GUESSED_SECONDS_PER_PIXEL["gpu" if device.startswith(("cuda", "mps")) else "cpu"], False


def about_minutes(seconds: float) -> str:
    minutes = seconds / 60
    if minutes < 1:
        return "under a minute"
    if minutes < 90:
        return f"about {round(minutes)} minute{'s' if round(minutes) != 1 else ''}"
    return f"about {minutes / 60:.1f} hours"


class LearningRateBox(QDoubleSpinBox):
    """A learning rate in the notation people write it in (3e-04, 0.001); the arrows halve or double it."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setDecimals(12)
        self.setRange(1e-8, 1.0)
        self.setValue(default("lr"))

    def textFromValue(self, value: float) -> str:
        return f"{value:.3g}"

    def valueFromText(self, text: str) -> float:
        try:
            return float(text)
        except ValueError:
            return self.value()

    def validate(self, text: str, pos: int):
        try:
            value = float(text)
        except ValueError:
            return QValidator.State.Intermediate, text, pos
        in_range = self.minimum() <= value <= self.maximum()
        state = QValidator.State.Acceptable if in_range else QValidator.State.Intermediate
        return state, text, pos

    def stepBy(self, steps: int) -> None:
        self.setValue(self.value() * 2.0 ** steps)


def describe_dataset(folder: str | Path) -> tuple[bool, str]:
    """(usable, one-line description) of a dataset folder, read from its manifest only."""
    from segstudio.core.dataset import DatasetError, load_manifest

    try:
        manifest = load_manifest(folder)
    except FileNotFoundError:
        return False, f"{folder} is not a dataset folder (it has no dataset.json); export images into it first"
    except (DatasetError, OSError) as err:
        return False, str(err)
    entries = manifest["entries"]
    if not entries:
        return False, f"{folder} holds no images yet"
    # How many are set aside is said once, for all folders together (split_label), as training counts it.
    return True, f"{len(entries)} image{'s' if len(entries) != 1 else ''}"


class FineTuneDialog(QDialog):
    def __init__(self, parent=None, *, base: str | None = None, device: str | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("fineTuneDialog")
        self.setWindowTitle("Fine-tune a Model")
        settings = QSettings()
        self.setMinimumWidth(560)
        layout = QVBoxLayout(self)
        layout.addWidget(self._data_box())
        layout.addWidget(self._model_box())
        layout.addWidget(self._length_box())
        self.advanced_button = QToolButton()
        self.advanced_button.setObjectName("advancedButton")
        self.advanced_button.setText("Advanced settings")
        self.advanced_button.setCheckable(True)
        self.advanced_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.advanced_button.setArrowType(Qt.ArrowType.RightArrow)
        layout.addWidget(self.advanced_button)
        self.advanced_box = self._training_box()
        self.advanced_box.setVisible(False)
        self.advanced_button.toggled.connect(self._show_advanced)
        layout.addWidget(self.advanced_box)
        self.hint = QLabel("")
        self.hint.setObjectName("fineTuneHint")
        self.hint.setWordWrap(True)
        layout.addWidget(self.hint)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.start_button = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.start_button.setText("Start")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)

        self._refused = ""  # why the folder the user last tried to add was refused
        self._load_models(base)
        self._restore(settings, device)
        last_export = settings.value(LAST_DATASET_KEY, "")
        if last_export and describe_dataset(last_export)[0]:
            self.add_dataset(last_export)
        self.dataset_list.itemSelectionChanged.connect(self._validate)
        for signal in (self.length_spin.valueChanged, self.length_unit.currentIndexChanged,
                       self.batch_spin.valueChanged, self.crop_spin.valueChanged,
                       self.base_combo.currentIndexChanged, self.device_combo.currentIndexChanged):
            signal.connect(self._update_overview)
        self._validate()

    # --- form ----------------------------------------------------------------------------------
    def _data_box(self) -> QGroupBox:
        data_box = QGroupBox("Training data: dataset folders written by File > Export to Dataset")
        data_layout = QVBoxLayout(data_box)
        self.dataset_list = QListWidget()
        self.dataset_list.setObjectName("datasetList")
        self.dataset_list.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.dataset_list.setMinimumHeight(60)
        self.dataset_list.setMaximumHeight(110)
        data_layout.addWidget(self.dataset_list)
        buttons_row = QHBoxLayout()
        self.add_button = QPushButton("Add Folder...")
        self.add_button.clicked.connect(self._browse_dataset)
        self.remove_button = QPushButton("Remove")
        self.remove_button.clicked.connect(self.remove_selected)
        buttons_row.addWidget(self.add_button)
        buttons_row.addWidget(self.remove_button)
        buttons_row.addStretch(1)
        data_layout.addLayout(buttons_row)
        return data_box

    def _model_box(self) -> QGroupBox:
        model_box = QGroupBox("Model")
        model_form = QFormLayout(model_box)
        self.base_combo = QComboBox()
        self.base_combo.setObjectName("baseCombo")
        self.base_combo.setToolTip("The version to start from; it is never changed, the result is a new version")
        model_form.addRow("Start from", self.base_combo)
        self.device_combo = QComboBox()
        for text, value in DEVICE_CHOICES:
            self.device_combo.addItem(text, value)
        model_form.addRow("Device", self.device_combo)
        return model_box

    def _length_box(self) -> QGroupBox:
        box = QGroupBox("How long to train")
        rows = QVBoxLayout(box)
        self.preset_radios: dict[str, QRadioButton] = {}
        for p in PRESETS:
            radio = QRadioButton(p.label)
            radio.setObjectName(f"{p.key}Preset")
            radio.setToolTip(p.why)
            radio.toggled.connect(lambda on, key=p.key: on and self._apply_preset(key))
            rows.addWidget(radio)
            self.preset_radios[p.key] = radio
        self.custom_radio = QRadioButton("Custom (set under Advanced settings)")
        self.custom_radio.setObjectName("customPreset")
        self.custom_radio.toggled.connect(lambda on: on and self.advanced_button.setChecked(True))
        rows.addWidget(self.custom_radio)
        self.split_label = QLabel("")
        self.split_label.setObjectName("splitLabel")
        self.split_label.setWordWrap(True)
        rows.addWidget(self.split_label)
        self.estimate_label = QLabel("")
        self.estimate_label.setObjectName("estimateLabel")
        self.estimate_label.setWordWrap(True)
        rows.addWidget(self.estimate_label)
        self.warning_label = QLabel("")
        self.warning_label.setObjectName("uncorrectedWarning")
        self.warning_label.setWordWrap(True)
        self.warning_label.setStyleSheet("color: #b35900;")
        rows.addWidget(self.warning_label)
        rows.addStretch(1)
        return box

    def _show_advanced(self, shown: bool) -> None:
        self.advanced_box.setVisible(shown)
        self.advanced_button.setArrowType(Qt.ArrowType.DownArrow if shown else Qt.ArrowType.RightArrow)
        self.adjustSize()

    def _apply_preset(self, key: str) -> None:
        config = preset(key).apply(TrainConfig(base=""))
        self.length_unit.setCurrentIndex(self.length_unit.findData("epochs"))
        self.length_spin.setValue(config.epochs)

    def _sync_preset(self) -> None:
        """Check the preset the length matches, or Custom."""
        by_epochs = self.length_unit.currentData() == "epochs"
        match = next((p.key for p in PRESETS if by_epochs and p.changes.get("epochs") == self.length_spin.value()),
                     None)
        radio = self.preset_radios[match] if match else self.custom_radio
        if not radio.isChecked():
            radio.blockSignals(True)
            radio.setChecked(True)
            radio.blockSignals(False)

    def _training_box(self) -> QGroupBox:
        train_box = QGroupBox("Training")
        form = QFormLayout(train_box)
        # Numbers a few digits long: full-width boxes would only make them harder to scan.
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.FieldsStayAtSizeHint)
        length_row = QHBoxLayout()
        self.length_spin = QSpinBox()
        self.length_spin.setObjectName("lengthSpin")
        self.length_spin.setRange(1, 1_000_000)
        self.length_unit = QComboBox()
        self.length_unit.addItem("epochs", "epochs")
        self.length_unit.addItem("steps", "steps")
        self.length_unit.setToolTip("An epoch is one pass over the training crops; a step is one batch")
        length_row.addWidget(self.length_spin)
        length_row.addWidget(self.length_unit)
        length_row.addStretch(1)
        form.addRow("Length", length_row)
        self.lr_spin = LearningRateBox()
        self.lr_spin.setToolTip("Peak learning rate (warm-up, then cosine decay)")
        form.addRow("Learning rate", self.lr_spin)
        self.batch_spin = QSpinBox()
        self.batch_spin.setRange(1, 512)
        self.batch_spin.setToolTip("Crops per step; halved automatically if the device runs out of memory")
        form.addRow("Batch size", self.batch_spin)
        self.crop_spin = QSpinBox()
        self.crop_spin.setRange(16, 4096)
        self.crop_spin.setSingleStep(16)
        self.crop_spin.setSuffix(" px")
        self.crop_spin.setToolTip("Side of the square crops cut from the images")
        form.addRow("Crop size", self.crop_spin)
        self.hand_weight_spin = QDoubleSpinBox()
        self.hand_weight_spin.setRange(1.0, 100.0)
        self.hand_weight_spin.setSingleStep(0.5)
        self.hand_weight_spin.setToolTip("Extra loss weight of pixels you corrected by hand (1 = no extra weight)")
        form.addRow("Hand-correction weight", self.hand_weight_spin)
        self.freeze_check = QCheckBox("Freeze the encoder (train only the decoder: faster, less data needed)")
        form.addRow("", self.freeze_check)
        self.augment_check = QCheckBox("Augment (flips, rotations, intensity changes)")
        form.addRow("", self.augment_check)
        for spin in (self.length_spin, self.lr_spin, self.batch_spin, self.crop_spin, self.hand_weight_spin):
            spin.setMinimumWidth(110)
        return train_box

    # --- content -------------------------------------------------------------------------------
    def _load_models(self, base: str | None) -> None:
        from segstudio.models.library import ModelLibrary

        try:
            entries = ModelLibrary().entries()
        except Exception as err:  # a broken library must not stop the dialog from explaining itself
            entries = []
            self._library_error = f"The model library could not be read: {err}"
        else:
            self._library_error = ""
        self._arch = {entry.id: entry.meta.arch for entry in entries}
        for entry in entries:
            origin = "bundled" if entry.bundled else "yours"
            self.base_combo.addItem(f"{entry.meta.name} v{entry.meta.version} ({origin}, {entry.meta.arch})", entry.id)
        index = self.base_combo.findData(base) if base else -1
        self.base_combo.setCurrentIndex(index if index >= 0 else self.base_combo.count() - 1)

    def _restore(self, settings: QSettings, device: str | None) -> None:
        def value(key, default, kind):
            raw = settings.value(SETTINGS_PREFIX + key, default)
            try:
                return kind(raw) if kind is not bool else raw in (True, "true", "1", 1)
            except (TypeError, ValueError):
                return default

        unit = value("unit", "epochs" if default("steps") is None else "steps", str)
        self.length_unit.setCurrentIndex(max(0, self.length_unit.findData(unit)))
        self.length_spin.setValue(value("length", default("epochs"), int))
        self.lr_spin.setValue(value("lr", default("lr"), float))
        self.batch_spin.setValue(value("batch", default("batch_size"), int))
        self.crop_spin.setValue(value("crop", default("crop"), int))
        self.hand_weight_spin.setValue(value("hand_weight", default("hand_weight"), float))
        self.freeze_check.setChecked(value("freeze_encoder", default("freeze_encoder"), bool))
        self.augment_check.setChecked(value("augment", default("augment"), bool))
        index = self.device_combo.findData(device) if device else -1
        self.device_combo.setCurrentIndex(max(0, index))

    def _save(self) -> None:
        settings = QSettings()
        for key, val in (
            ("unit", self.length_unit.currentData()), ("length", self.length_spin.value()),
            ("lr", self.lr_spin.value()), ("batch", self.batch_spin.value()),
            ("crop", self.crop_spin.value()), ("hand_weight", self.hand_weight_spin.value()),
            ("freeze_encoder", self.freeze_check.isChecked()), ("augment", self.augment_check.isChecked()),
        ):
            settings.setValue(SETTINGS_PREFIX + key, val)

    def datasets(self) -> list[str]:
        return [self.dataset_list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.dataset_list.count())]

    def add_dataset(self, folder: str | Path) -> bool:
        """Add a dataset folder; a folder that is not a usable dataset is refused with the reason shown."""
        folder = str(Path(folder).expanduser().resolve())
        if folder in self.datasets():
            return True
        ok, description = describe_dataset(folder)
        self._refused = "" if ok else description
        if not ok:
            self._validate()
            return False
        item = QListWidgetItem(f"{folder}  —  {description}")
        item.setData(Qt.ItemDataRole.UserRole, folder)
        item.setToolTip(folder)
        self.dataset_list.addItem(item)
        self._validate()
        return True

    def remove_selected(self) -> None:
        for item in self.dataset_list.selectedItems():
            self.dataset_list.takeItem(self.dataset_list.row(item))
        self._validate()

    def _browse_dataset(self) -> None:
        start = self.datasets()[-1] if self.datasets() else QSettings().value(LAST_DATASET_KEY, str(Path.home()))
        folder = QFileDialog.getExistingDirectory(self, "Add Dataset Folder", str(start))
        if folder:
            self.add_dataset(folder)

    # --- result --------------------------------------------------------------------------------
    def _validate(self) -> None:
        problems = []
        if self.base_combo.count() == 0:
            problems.append(self._library_error or "There is no model to start from: the model library is empty.")
        if not self.datasets():
            problems.append("Add at least one dataset folder (File > Export to Dataset writes one).")
        self.remove_button.setEnabled(bool(self.dataset_list.selectedItems()))
        self.start_button.setEnabled(not problems)
        self.hint.setText(" ".join([self._refused, *problems]).strip())
        self._update_overview()

    def _update_overview(self, *_args) -> None:
        """The split, the time estimates and the warning about uncorrected masks, for the folders listed.

        Computed by the same engine functions the training run uses, so the numbers here are the run's.
        """
        from segstudio.core.dataset import DatasetError
        from segstudio.engine.training.split import UNCORRECTED_WARNING, overview_for_folders

        if not hasattr(self, "estimate_label"):
            return
        self._sync_preset()
        try:
            overview = overview_for_folders(self.datasets()) if self.datasets() else None
        except (DatasetError, OSError, ValueError, KeyError):
            overview = None
        if overview is None:
            self.split_label.setText("")
            self.estimate_label.setText("")
            self.warning_label.setText("")
            for p in PRESETS:
                self.preset_radios[p.key].setText(p.label)
            return
        self.split_label.setText(overview.plan.describe())
        self.warning_label.setText(UNCORRECTED_WARNING if overview.uncorrected else "")
        device = self.device_combo.currentData() or "auto"
        per_pixel, measured = seconds_per_pixel(self._arch.get(self.base_combo.currentData(), ""), device)
        current = self.config()
        for p in PRESETS:
            seconds = estimate_seconds(p.apply(current), overview.train_sizes, per_pixel)
            self.preset_radios[p.key].setText(f"{p.label}, {about_minutes(seconds)}")
        how = ("from the speed of the last fine-tune of this model on this device" if measured else
               "a rough guess until a fine-tune has run on this computer")
        seconds = estimate_seconds(current, overview.train_sizes, per_pixel)
        self.estimate_label.setText(f"Estimated time: {about_minutes(seconds)} ({how}; checking the images set "
                                    "aside adds a little after each pass).")
        self._fit_height()

    def _fit_height(self) -> None:
        # Wrapped explanations change length with the folders chosen: grow to show them whole.
        if self.isVisible():
            self.resize(self.width(), max(self.height(), self.sizeHint().height()))

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self.resize(max(self.width(), 560), self.heightForWidth(max(self.width(), 560)) if self.hasHeightForWidth()
                    else self.sizeHint().height())

    def config(self) -> TrainConfig:
        """What the form asks for; fields it does not show keep their defaults."""
        by_steps = self.length_unit.currentData() == "steps"
        length = {"steps": self.length_spin.value()} if by_steps else {"epochs": self.length_spin.value()}
        return TrainConfig(
            base=self.base_combo.currentData(),
            data=self.datasets(),
            **length,
            lr=self.lr_spin.value(),
            batch_size=self.batch_spin.value(),
            crop=self.crop_spin.value(),
            freeze_encoder=self.freeze_check.isChecked(),
            augment=self.augment_check.isChecked(),
            hand_weight=self.hand_weight_spin.value(),
            device=self.device_combo.currentData(),
        )

    def accept(self) -> None:
        if not self.start_button.isEnabled():
            return
        self._save()
        super().accept()
