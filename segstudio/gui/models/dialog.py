"""Model > New Model: the network (what it is good at, what it costs), the input, the classes, the start."""
from __future__ import annotations

import re

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QVBoxLayout,
)

from segstudio.core.model_fit import HE_LABEL, HE_STAIN_VECTORS, STAIN_VECTORS_HELP, is_colour, parse_stain_vectors
from segstudio.models.catalogue import MEASURED_ON, NETWORKS, make_seconds, network

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
CHOSEN = "chosen"


def input_entries(channels: int, channel_names) -> list[tuple[str, str]]:
    """(label, input spec) offered for an image with `channels` channels (the first is the default)."""
    colour = is_colour(channel_names)  # an unnamed stack of 3 or 4 channels is fluorescence, not a photograph
    entries = [("Grey (one channel; colour is averaged)", "grey")]
    if colour:
        entries = [("Colour (red, green, blue)", "rgb"), (HE_LABEL, "he"), *entries]
    elif channels > 1:
        entries.append((f"All {channels} channels", "channels:" + ",".join(str(i) for i in range(channels))))
        entries.append(("Chosen channels...", CHOSEN))
    else:
        entries += [("Colour (red, green, blue)", "rgb"), (HE_LABEL, "he")]
    return entries


class NewModelDialog(QDialog):
    """Asks for everything a new model needs; `spec()` turns the answers into an engine NewModelSpec."""

    def __init__(self, parent=None, *, classes: list[dict], models: list, image_channels: int = 1,
                 channel_names=None, taken_names=(), imagenet=lambda arch: None, tile_time=lambda arch: None,
                 measure=lambda arch: None) -> None:
        super().__init__(parent)
        self._tile_time = tile_time  # arch -> seconds per 512 x 512 tile measured on this computer, or None
        self._measure = measure  # asks for that time to be measured; set_tile_time follows
        self.setObjectName("newModelDialog")
        self.setWindowTitle("New Model")
        self.setMinimumWidth(520)
        self._classes = [dict(c) for c in classes]
        self._models = list(models)  # library entries, for "start from an existing model"
        self._taken = {str(n).casefold() for n in taken_names}
        self._imagenet = imagenet
        form = QFormLayout()
        self.name_edit = QLineEdit(self._free_name("my-model"))
        self.name_edit.setObjectName("newModelName")
        form.addRow("Name", self.name_edit)
        self.arch_combo = QComboBox()
        self.arch_combo.setObjectName("newModelArch")
        for choice in NETWORKS:
            self.arch_combo.addItem(choice.title, choice.arch)
        form.addRow("Network", self.arch_combo)
        self.arch_info = QLabel("")
        self.arch_info.setObjectName("newModelArchInfo")
        self.arch_info.setWordWrap(True)
        self.arch_info.setToolTip(f"Times measured on a {MEASURED_ON}; yours differ with the computer.")
        form.addRow(self.arch_info)
        self.input_combo = QComboBox()
        self.input_combo.setObjectName("newModelInput")
        for label, spec in input_entries(image_channels, channel_names):
            self.input_combo.addItem(label, spec)
        form.addRow("Input", self.input_combo)
        self.channels_edit = QLineEdit()
        self.channels_edit.setObjectName("newModelChannels")
        self.channels_edit.setPlaceholderText("channel numbers, e.g. 1, 3")
        form.addRow("Channels", self.channels_edit)
        self.stains_edit = QLineEdit()
        self.stains_edit.setObjectName("newModelStainVectors")
        self.stains_edit.setPlaceholderText("standard H&E: " + "; ".join(",".join(f"{v:.2f}" for v in row)
                                                                       for row in HE_STAIN_VECTORS))
        self.stains_edit.setToolTip(f"Your lab's stain vectors, if its slides are stained differently: "
                                    f"{STAIN_VECTORS_HELP}. Empty: the standard ones.")
        form.addRow("Stain vectors", self.stains_edit)
        names = ", ".join(c["name"] for c in self._classes)
        self.classes_label = QLabel(f"{names}  (the classes of this session; change them in the Classes panel)")
        self.classes_label.setObjectName("newModelClasses")
        self.classes_label.setWordWrap(True)
        form.addRow("Classes", self.classes_label)
        self.start_combo = QComboBox()
        self.start_combo.setObjectName("newModelStart")
        form.addRow("Start from", self.start_combo)
        self.start_info = QLabel("")
        self.start_info.setObjectName("newModelStartInfo")
        self.start_info.setWordWrap(True)
        form.addRow(self.start_info)
        self.problem = QLabel("")
        self.problem.setObjectName("newModelProblem")
        self.problem.setWordWrap(True)
        self.problem.setStyleSheet("QLabel { color: #a00000; }")
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.create_button = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.create_button.setText("Create")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        self._form = form
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.problem)
        layout.addWidget(self.buttons)
        self.arch_combo.currentIndexChanged.connect(self._on_arch)
        self.input_combo.currentIndexChanged.connect(self._validate)
        self.start_combo.currentIndexChanged.connect(self._on_start)
        self.name_edit.textChanged.connect(self._validate)
        self.channels_edit.textChanged.connect(self._validate)
        self.stains_edit.textChanged.connect(self._validate)
        self._on_arch()

    def _free_name(self, stem: str) -> str:
        name, n = stem, 1
        while name.casefold() in self._taken:
            n += 1
            name = f"{stem}-{n}"
        return name

    def _on_arch(self, *_args) -> None:
        choice = network(self.arch())
        self._show_cost()
        self.start_combo.blockSignals(True)
        self.start_combo.clear()
        self.start_combo.addItem("Scratch (random weights)", "scratch")
        if choice.imagenet_config is not None:
            self.start_combo.addItem(f"ImageNet weights ({choice.cost(imagenet=True)})", "imagenet")
            item = self.start_combo.model().item(1)
            item.setEnabled(self._imagenet(choice.arch) is not None)
            if not item.isEnabled():
                item.setToolTip("No ImageNet weights file for this network is on this computer")
        for entry in self._models:
            if entry.meta.arch == choice.arch:
                self.start_combo.addItem(f"Model {entry.id} (keeps its weights)", f"model:{entry.id}")
        self.start_combo.blockSignals(False)
        self._on_start()

    def _show_cost(self) -> None:
        choice = network(self.arch())
        measured = self._tile_time(choice.arch)
        text = f"{choice.good_at}\nCost: {choice.cost(measured=measured)}."
        if measured is None:
            text += " (Measuring its time on this computer...)"
        self.arch_info.setText(text)
        if measured is None:
            self._measure(choice.arch)

    def set_tile_time(self, arch: str) -> None:
        """A network's time on this computer has been measured: show it if that network is the one chosen."""
        if arch == self.arch():
            self._show_cost()

    def _on_start(self, *_args) -> None:
        kind, source = self.start()
        texts = {"scratch": "Every weight starts random: it needs the most training.",
                 "imagenet": "The encoder starts from weights learnt on photographs (ImageNet); the network "
                             "is built at its published size, slower than the default.",
                 "model": f"Weights of {source} are kept where they fit: the encoder, and the class layer rows "
                          "of classes both share. New classes and new input channels start untrained."}
        seconds = self.make_seconds()
        if seconds >= 3:
            texts[kind] += f" Making it takes about {seconds:.0f} s."
        self.start_info.setText(texts[kind])
        self._validate()

    def make_seconds(self) -> float:
        """About how long making the model as chosen takes: its weights decide (catalogue.make_seconds)."""
        choice = network(self.arch())
        kind, source = self.start()
        if kind == "imagenet":
            return make_seconds(choice.imagenet_parameters or choice.parameters)
        entry = next((e for e in self._models if e.id == source), None) if kind == "model" else None
        try:  # a model is as large as its file says (four bytes a weight); read by the file's size only
            parameters = entry.path.stat().st_size // 4 if entry is not None else choice.parameters
        except OSError:
            parameters = choice.parameters
        return make_seconds(parameters)

    def start(self) -> tuple[str, str | None]:
        """("scratch" | "imagenet" | "model", the model's id or None)."""
        kind, _, source = (self.start_combo.currentData() or "scratch").partition(":")
        return kind, source or None

    def arch(self) -> str:
        return self.arch_combo.currentData()

    def input_spec(self) -> str:
        spec = self.input_combo.currentData()
        if spec != CHOSEN:
            return spec
        numbers = [part for part in re.split(r"[,\s]+", self.channels_edit.text().strip()) if part]
        try:
            return "channels:" + ",".join(str(int(n) - 1) for n in numbers)
        except ValueError:
            return "channels:"

    def _validate(self, *_args) -> None:
        from segstudio.core.model_fit import input_definition

        rows = {self.channels_edit: self.input_combo.currentData() == CHOSEN,
                self.stains_edit: self.input_combo.currentData() == "he"}
        changed = False
        for field, shown in rows.items():
            changed |= field.isHidden() == shown
            self._form.setRowVisible(field, shown)
        if changed and self.isVisible():
            self.adjustSize()  # a row came or went: the wrapped texts keep their room
        name = self.name_edit.text().strip()
        problem = ""
        if not _NAME.match(name):
            problem = "The name may hold letters, digits, '.', '_' and '-', and starts with a letter or digit."
        elif name.casefold() in self._taken:
            problem = f"A model named {name!r} exists already; choose another name."
        elif len(self._classes) < 2:
            problem = "Add at least one class besides the background in the Classes panel first."
        else:
            try:
                input_definition(self.input_spec())
            except ValueError as err:
                problem = f"Channels: {err}"
            else:
                try:
                    self.stain_vectors()
                except ValueError as err:
                    problem = f"Stain vectors: {err}."
        self.problem.setText(problem)
        self.create_button.setEnabled(not problem)

    def stain_vectors(self) -> list[list[float]] | None:
        """The lab's own stain vectors typed for an H&E input; None: the standard ones. ValueError says why not."""
        text = self.stains_edit.text().strip()
        if self.input_combo.currentData() != "he" or not text:
            return None
        return parse_stain_vectors(text)

    def spec(self):
        from segstudio.engine.new_model import NewModelSpec

        kind, source = self.start()
        return NewModelSpec(name=self.name_edit.text().strip(), arch=self.arch(), classes=self._classes,
                            input=self.input_spec(), start=kind, source=source, stain_vectors=self.stain_vectors())

    def accept(self) -> None:
        if self.create_button.isEnabled():
            super().accept()
