"""Start the window. torch is imported in the background (see gui/prediction/controller.py), so the window
appears fast."""
from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QTimer
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication

from segstudio.core import paths
from segstudio.gui.startup_probe import install_startup_probe


def create_application(argv: Sequence[str] | None = None) -> QApplication:
    app = QApplication.instance() or QApplication(list(argv or sys.argv[:1]))
    QCoreApplication.setOrganizationName("segstudio")
    QCoreApplication.setApplicationName("segstudio")
    app.setDesktopFileName("segstudio")  # lets Wayland match the window to segstudio.desktop
    icon = paths.resources_dir() / "icons" / "segstudio.svg"
    if icon.exists():
        app.setWindowIcon(QIcon(str(icon)))
    return app


def default_sample() -> Path | None:
    preferred = paths.samples_dir() / "nuclei_16bit.tif"
    if preferred.exists():
        return preferred
    from segstudio.core.imageio import SUPPORTED_SUFFIXES

    samples = sorted(p for p in paths.samples_dir().glob("*") if p.suffix.lower() in SUPPORTED_SUFFIXES)
    return samples[0] if samples else None


def run_app(images: Sequence[str] = (), sample: bool = False, model: str | None = None) -> int:
    app = create_application()
    from segstudio.gui.main_window import MainWindow

    window = MainWindow()
    install_startup_probe(window)
    window.show()
    to_open = list(images)
    if sample and (first := default_sample()) is not None:
        to_open.insert(0, str(first))
    if to_open:
        QTimer.singleShot(0, lambda: window.open_paths(to_open))
    elif window.editing.autosave.recovery_box is None:  # after a crash, recovery offers the work instead
        QTimer.singleShot(0, window.session.offer_last_session)
    if model:
        QTimer.singleShot(0, lambda: window.prediction.select_model(model))
    return app.exec()
