"""Startup timing: with SEGSTUDIO_STARTUP_PROBE=<file> set, the main window records when it first shows
and first paints, writes those wall-clock times (time.time()) to <file> as JSON, then quits the app.

benchmarks/bench_startup.py launches the real program this way in fresh processes. Without the variable
nothing is installed, so a normal start pays one environment lookup.

The file also says how far torch had got at each moment ("absent", "importing" or "imported"): the
window is meant to appear without waiting for torch, which is imported on a background thread.
"""
from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QEvent, QObject, QTimer
from PySide6.QtWidgets import QWidget

ENV_VAR = "SEGSTUDIO_STARTUP_PROBE"
# Platforms that never paint a hidden or minimised window must not leave a benchmark run hanging.
PAINT_WAIT_MS = 5000


def torch_state() -> str:
    module = sys.modules.get("torch")
    if module is None:
        return "absent"
    # A module sits in sys.modules from the moment its import starts; the spec says whether it finished.
    spec = getattr(module, "__spec__", None)
    return "importing" if getattr(spec, "_initializing", False) else "imported"


class _FirstShowProbe(QObject):
    def __init__(self, window: QWidget, target: Path, quit_app: Callable[[], None]) -> None:
        super().__init__(window)
        self._window = window
        self._target = target
        self._quit_app = quit_app
        self._record: dict | None = None
        self._done = False

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        kind = event.type()
        if kind == QEvent.Type.Show and self._record is None:
            self._record = {"shown_at": time.time(), "torch_at_show": torch_state(), "pid": os.getpid()}
            QTimer.singleShot(PAINT_WAIT_MS, self._finish)
        elif kind == QEvent.Type.Paint and self._record is not None and not self._done:
            self._record["painted_at"] = time.time()
            self._record["torch_at_paint"] = torch_state()
            # Quit after this paint has been handled, not from inside it.
            QTimer.singleShot(0, self._finish)
        return False

    def _finish(self) -> None:
        if self._done or self._record is None:
            return
        self._done = True
        self._record.setdefault("painted_at", None)
        self._record.setdefault("torch_at_paint", torch_state())
        self._target.parent.mkdir(parents=True, exist_ok=True)
        partial = self._target.with_name(self._target.name + ".partial")
        partial.write_text(json.dumps(self._record), encoding="utf-8")
        os.replace(partial, self._target)  # the reader never sees half a file
        self._window.removeEventFilter(self)
        self._quit_app()


def install_startup_probe(
    window: QWidget, *, quit_app: Callable[[], None] = QCoreApplication.quit
) -> bool:
    """Call before window.show(). Returns whether the probe was installed (the variable was set)."""
    target = os.environ.get(ENV_VAR)
    if not target:
        return False
    window.installEventFilter(_FirstShowProbe(window, Path(target), quit_app))
    return True
