"""Pick the TIFF page and the channels (up to three, shown as R, G, B) of a multichannel image."""
from __future__ import annotations

from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QGroupBox,
    QLabel,
    QSpinBox,
    QVBoxLayout,
)

MAX_SHOWN = 3


class ChannelsDialog(QDialog):
    def __init__(self, doc, parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Channels and Page")
        meta = doc.image.meta
        layout = QVBoxLayout(self)
        form = QFormLayout()
        self.page = QSpinBox()
        self.page.setRange(1, max(1, meta.pages))
        self.page.setValue(meta.page + 1)
        self.page.setEnabled(meta.pages > 1)
        form.addRow("Page", self.page)
        if meta.pages > 1:
            form.addRow("", QLabel("Each page keeps its own mask; switching pages loses no work."))
        layout.addLayout(form)

        box = QGroupBox(f"Channels to show (up to {MAX_SHOWN}; the first is red, then green, blue)")
        box_layout = QVBoxLayout(box)
        names = meta.channel_names or tuple(f"Channel {i + 1}" for i in range(meta.channels))
        current = set(doc.display_channels or range(min(MAX_SHOWN, meta.channels)))
        self.checks: list[QCheckBox] = []
        for i, name in enumerate(names):
            check = QCheckBox(name)
            check.setChecked(i in current)
            check.toggled.connect(self._validate)
            box_layout.addWidget(check)
            self.checks.append(check)
        layout.addWidget(box)
        layout.addWidget(QLabel("This changes only what you see. The Model panel chooses the channel Predict uses."))
        self.hint = QLabel("")
        layout.addWidget(self.hint)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)
        self._validate()

    def _validate(self) -> None:
        chosen = [i for i, c in enumerate(self.checks) if c.isChecked()]
        ok = 1 <= len(chosen) <= MAX_SHOWN
        self.hint.setText("" if ok else f"Choose between 1 and {MAX_SHOWN} channels.")
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(ok)

    def selection(self) -> tuple[int, tuple[int, ...]]:
        return self.page.value() - 1, tuple(i for i, c in enumerate(self.checks) if c.isChecked())
