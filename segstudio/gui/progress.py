"""Progress bar, ETA and Cancel for a long job, shown in the status bar."""
from __future__ import annotations

import time

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QWidget


def format_eta(seconds: float | None) -> str:
    if seconds is None or seconds != seconds or seconds < 0:
        return ""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s left"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s left"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min left"


class JobProgress(QWidget):
    """Hidden until a job starts. ETA is extrapolated from the rate so far."""

    cancel_requested = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("jobProgress")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.title = QLabel("")
        self.bar = QProgressBar()
        self.bar.setMaximumWidth(180)
        self.bar.setTextVisible(True)
        self.eta = QLabel("")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("cancelJobButton")
        self.cancel_button.setToolTip("Stop this job; nothing already on screen is changed (Esc)")
        self.cancel_button.clicked.connect(self.request_cancel)
        for w in (self.title, self.bar, self.eta, self.cancel_button):
            layout.addWidget(w)
        self._started = 0.0
        self.setVisible(False)

    def start(self, title: str, total: int = 0) -> None:
        self._started = time.monotonic()
        self.title.setText(title)
        self.bar.setRange(0, max(0, total))
        self.bar.setValue(0)
        self.eta.setText("")
        self.cancel_button.setEnabled(True)
        self.cancel_button.setText("Cancel")
        self.setVisible(True)

    def update_progress(self, done: int, total: int, eta_s: float | None = None) -> None:
        self.bar.setRange(0, max(1, total))
        self.bar.setValue(done)
        if eta_s is None and done > 0:
            elapsed = time.monotonic() - self._started
            eta_s = elapsed / done * (total - done)
        self.eta.setText(format_eta(eta_s))

    def finish(self) -> None:
        self.setVisible(False)

    def request_cancel(self) -> None:
        self.cancel_button.setEnabled(False)
        self.cancel_button.setText("Cancelling...")
        self.cancel_requested.emit()
