"""File > Export to Dataset...: where to, which images, and whether to also write nnU-Net's raw layout."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QRegularExpression, QSettings
from PySide6.QtGui import QRegularExpressionValidator
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from segstudio.core.document import ImageStatus
from segstudio.gui.settings import LAST_DATASET_KEY, NNUNET_FOLDER_KEY, NNUNET_KEY


def worth_exporting(doc) -> bool:
    """A document has labels to teach from: predicted, edited (or exported before), or painted at all."""
    return doc.status != ImageStatus.NEW or bool(doc.mask.any())


@dataclass
class NnunetOptions:
    out_root: Path
    dataset_id: int = 501
    name: str = "segstudio"


def _bool(value) -> bool:
    return value in (True, "true", "1", 1)


class ExportDialog(QDialog):
    def __init__(self, documents, current=None, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("exportDialog")
        self.setWindowTitle("Export to Dataset")
        self.documents = list(documents)
        self.current = current
        settings = QSettings()
        layout = QVBoxLayout(self)
        layout.addWidget(self._build_folder_box(settings))
        layout.addWidget(self._build_scope_box(current))
        layout.addWidget(self._build_nnunet_box(settings))
        self._add_hint_and_buttons(layout)
        self.setMinimumWidth(520)
        self._validate()

    def _build_folder_box(self, settings: QSettings) -> QGroupBox:
        folder_box = QGroupBox("Dataset folder")
        folder_layout = QVBoxLayout(folder_box)
        self.folder_edit, browse = self._path_row(folder_layout, "Choose the dataset folder")
        self.folder_edit.setObjectName("datasetFolderEdit")
        self.folder_edit.setPlaceholderText("A new or existing segstudio dataset folder")
        self.folder_edit.setText(str(settings.value(LAST_DATASET_KEY, "") or ""))
        self.folder_edit.textChanged.connect(self._validate)
        browse.clicked.connect(self._browse_folder)
        self.folder_info = QLabel("")
        self.folder_info.setObjectName("datasetFolderInfo")
        self.folder_info.setWordWrap(True)
        folder_layout.addWidget(self.folder_info)
        return folder_box

    def _build_scope_box(self, current) -> QGroupBox:
        """The current image or every image worth exporting (the latter disabled when there is none)."""
        scope_box = QGroupBox("Images")
        scope_layout = QVBoxLayout(scope_box)
        self.current_radio = QRadioButton(
            f"Current image ({current.title})" if current is not None else "Current image"
        )
        self.current_radio.setEnabled(current is not None)
        eligible = [d for d in self.documents if worth_exporting(d)]
        self.all_radio = QRadioButton(f"All edited or predicted images ({len(eligible)} of {len(self.documents)} open)")
        self.all_radio.setEnabled(bool(eligible))
        self._scope = QButtonGroup(self)
        self._scope.addButton(self.current_radio)
        self._scope.addButton(self.all_radio)
        (self.current_radio if current is not None else self.all_radio).setChecked(True)
        self._scope.buttonToggled.connect(lambda *_: self._validate())
        scope_layout.addWidget(self.current_radio)
        scope_layout.addWidget(self.all_radio)
        note = QLabel("Each image is written with its mask, the map of pixels painted by hand, the class table and "
                      "the model that pre-filled it. Exporting an image again replaces its earlier entry.")
        note.setObjectName("exportNote")
        note.setWordWrap(True)  # an explanation to read, so drawn as normal text, not greyed out as disabled
        scope_layout.addWidget(note)
        return scope_box

    def _build_nnunet_box(self, settings: QSettings) -> QGroupBox:
        nn_box = QGroupBox("nnU-Net")
        nn_layout = QVBoxLayout(nn_box)
        self.nnunet_check = QCheckBox("Also write the nnU-Net v2 raw layout (the whole dataset)")
        self.nnunet_check.setObjectName("nnunetCheck")
        self.nnunet_check.setChecked(_bool(settings.value(NNUNET_KEY, False)))
        nn_layout.addWidget(self.nnunet_check)
        self.nnunet_fields = QWidget()
        form = QFormLayout(self.nnunet_fields)
        form.setContentsMargins(20, 0, 0, 0)
        row = QHBoxLayout()
        self.nnunet_folder_edit = QLineEdit(
            str(settings.value(NNUNET_FOLDER_KEY, "") or os.environ.get("nnUNet_raw", ""))
        )
        self.nnunet_folder_edit.setPlaceholderText("nnUNet_raw folder (default: inside the dataset folder)")
        nn_browse = QPushButton("Browse...")
        nn_browse.clicked.connect(self._browse_nnunet)
        row.addWidget(self.nnunet_folder_edit, 1)
        row.addWidget(nn_browse)
        form.addRow("nnUNet_raw", row)
        id_row = QHBoxLayout()
        self.nnunet_id = QSpinBox()
        self.nnunet_id.setRange(1, 999)
        self.nnunet_id.setValue(501)
        self.nnunet_name = QLineEdit("segstudio")
        self.nnunet_name.setValidator(QRegularExpressionValidator(QRegularExpression(r"[A-Za-z0-9][A-Za-z0-9_-]*")))
        id_row.addWidget(self.nnunet_id)
        id_row.addWidget(QLabel("name"))
        id_row.addWidget(self.nnunet_name, 1)
        form.addRow("Dataset id", id_row)
        nn_layout.addWidget(self.nnunet_fields)
        self.nnunet_check.toggled.connect(self.nnunet_fields.setEnabled)
        self.nnunet_fields.setEnabled(self.nnunet_check.isChecked())
        return nn_box

    def _add_hint_and_buttons(self, layout: QVBoxLayout) -> None:
        self.hint = QLabel("")
        self.hint.setObjectName("exportHint")
        self.hint.setWordWrap(True)
        layout.addWidget(self.hint)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.export_button = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.export_button.setText("Export")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)

    def _path_row(self, layout, tip: str) -> tuple[QLineEdit, QPushButton]:
        row = QHBoxLayout()
        edit = QLineEdit()
        edit.setToolTip(tip)
        button = QPushButton("Browse...")
        row.addWidget(edit, 1)
        row.addWidget(button)
        layout.addLayout(row)
        return edit, button

    def _browse_folder(self) -> None:
        start = self.folder_edit.text() or str(Path.home())
        folder = QFileDialog.getExistingDirectory(self, "Dataset Folder", start)
        if folder:
            self.folder_edit.setText(folder)

    def _browse_nnunet(self) -> None:
        start = self.nnunet_folder_edit.text() or self.folder_edit.text() or str(Path.home())
        folder = QFileDialog.getExistingDirectory(self, "nnUNet_raw Folder", start)
        if folder:
            self.nnunet_folder_edit.setText(folder)

    # --- what the user chose -------------------------------------------------------------------
    def folder(self) -> Path | None:
        text = self.folder_edit.text().strip()
        return Path(text).expanduser().resolve() if text else None

    def selected_documents(self) -> list:
        if self.current_radio.isChecked() and self.current is not None:
            return [self.current]
        return [d for d in self.documents if worth_exporting(d)]

    def nnunet(self) -> NnunetOptions | None:
        if not self.nnunet_check.isChecked():
            return None
        text = self.nnunet_folder_edit.text().strip()
        out_root = Path(text).expanduser().resolve() if text else (self.folder() or Path.cwd()) / "nnUNet_raw"
        return NnunetOptions(out_root, self.nnunet_id.value(), self.nnunet_name.text() or "segstudio")

    def _folder_problem(self) -> tuple[str | None, str]:
        """(problem or None, description of the folder)."""
        from segstudio.core.dataset import DatasetError, load_manifest

        folder = self.folder()
        if folder is None:
            return "Choose the dataset folder to export into.", ""
        if folder.exists() and not folder.is_dir():
            return f"{folder} is a file, not a folder.", ""
        try:
            manifest = load_manifest(folder)
        except FileNotFoundError:
            return None, "A new dataset will be created in this folder."
        except (DatasetError, OSError) as err:
            return f"{err}. Choose another folder.", ""
        n = len(manifest["entries"])
        return None, f"Existing dataset with {n} image{'s' if n != 1 else ''}; new images are added to it."

    def _validate(self) -> None:
        problem, info = self._folder_problem()
        if problem is None and not self.selected_documents():
            problem = "There is no image to export."
        self.folder_info.setText(info)
        self.hint.setText(problem or "")
        self.export_button.setEnabled(problem is None)

    def accept(self) -> None:
        self._validate()
        if not self.export_button.isEnabled():
            return
        settings = QSettings()
        settings.setValue(LAST_DATASET_KEY, str(self.folder()))
        settings.setValue(NNUNET_KEY, self.nnunet_check.isChecked())
        if self.nnunet_check.isChecked() and self.nnunet_folder_edit.text().strip():
            settings.setValue(NNUNET_FOLDER_KEY, self.nnunet_folder_edit.text().strip())
        super().accept()
