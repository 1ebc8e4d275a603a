"""Fine-tuning from the window: `segstudio train ... --progress jsonl` runs as a child process.

A child process rather than a thread: a crash, an out-of-memory kill or a cancel cannot take the window or
the user's open work with it, and the window and the command line share one training path. The child
writes one JSON event per line on stdout; stderr is kept (bounded) for error reports. The child writes the
new model version atomically and only at the very end, so the window never writes into the model library:
whatever happens to the child, the library holds either the complete new version or nothing new.
"""
from __future__ import annotations

import json
import os
import sys
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from PySide6.QtCore import QObject, QProcess, QProcessEnvironment, Qt, QTimer, Signal
from PySide6.QtWidgets import QMessageBox

from segstudio.gui.progress import JobProgress

#: Exit status of `segstudio train` when it stopped on request (see engine.train_cli).
EXIT_CANCELLED = 130
#: How long a child may take to stop after SIGTERM before it is killed.
KILL_GRACE_MS = 10_000


class JsonLinesParser:
    """Turns the child's stdout, read in arbitrary chunks, into event dicts.

    A line may arrive split across reads, so the unterminated tail is kept until its newline comes. Lines
    that are not a JSON object with an "event" key (a stray print from a library, a torn write) are set
    aside in ``ignored`` instead of stopping the stream.
    """

    MAX_LINE = 1 << 20  # a "line" this long without a newline is not an event: drop it, bound the memory

    def __init__(self) -> None:
        self._pending = b""
        self.ignored: deque[str] = deque(maxlen=20)

    def feed(self, chunk: bytes) -> list[dict]:
        data = self._pending + bytes(chunk)
        lines = data.split(b"\n")
        self._pending = lines.pop()
        if len(self._pending) > self.MAX_LINE:
            self.ignored.append(self._pending[:200].decode("utf-8", "replace") + "...")
            self._pending = b""
        return [event for line in lines if (event := self._parse(line)) is not None]

    def finish(self) -> list[dict]:
        """Events in a last line that ended without a newline (the stream is closed)."""
        tail, self._pending = self._pending, b""
        event = self._parse(tail)
        return [event] if event is not None else []

    def _parse(self, raw: bytes) -> dict | None:
        text = raw.decode("utf-8", "replace").strip()
        if not text:
            return None
        try:
            event = json.loads(text)
        except ValueError:
            event = None
        if not isinstance(event, dict) or not isinstance(event.get("event"), str):
            self.ignored.append(text[:200])
            return None
        return event


@dataclass
class TrainRequest:
    """What the Fine-tune dialog asks for; maps one to one onto `segstudio train` options."""

    base: str
    datasets: list[str]
    epochs: int | None = 20
    steps: int | None = None
    lr: float = 3e-4
    batch: int = 8
    crop: int = 256
    freeze_encoder: bool = False
    augment: bool = True
    hand_weight: float = 3.0
    device: str = "auto"

    def arguments(self) -> list[str]:
        args = ["--model", self.base]
        for folder in self.datasets:
            args += ["--data", str(folder)]
        if self.steps is not None:
            args += ["--steps", str(int(self.steps))]
        else:
            args += ["--epochs", str(int(self.epochs or 1))]
        args += ["--lr", repr(float(self.lr)), "--batch", str(int(self.batch)), "--crop", str(int(self.crop)),
                 "--hand-weight", repr(float(self.hand_weight)), "--device", self.device]
        if self.freeze_encoder:
            args.append("--freeze-encoder")
        if not self.augment:
            args.append("--no-augment")
        return args + ["--progress", "jsonl"]


@dataclass
class TrainingOutcome:
    status: str  # "done", "cancelled" or "failed"
    message: str = ""
    version: str | None = None
    promoted: bool = False
    parent: str | None = None
    parent_metrics: dict | None = None
    child_metrics: dict | None = None
    exit_code: int | None = None
    killed: bool = False  # it had to be killed after not stopping within the grace period
    stderr_tail: str = ""
    done_event: dict = field(default_factory=dict)


def default_train_command() -> list[str]:
    """The program and leading arguments that run `segstudio train` with this same installation."""
    if getattr(sys, "frozen", False):  # a PyInstaller build: the executable is the `segstudio` command
        return [sys.executable, "train"]
    return [sys.executable, "-m", "segstudio", "train"]


def _child_environment() -> QProcessEnvironment:
    env = QProcessEnvironment.systemEnvironment()
    # The child must import the same segstudio as this window, also when running from a source checkout
    # that is not the installed copy. A site-packages folder is left alone: putting it ahead of the
    # standard library could shadow stdlib modules with backports.
    package_root = Path(__file__).resolve().parents[2]
    if not getattr(sys, "frozen", False) and package_root.name not in ("site-packages", "dist-packages"):
        existing = env.value("PYTHONPATH", "")
        env.insert("PYTHONPATH", os.pathsep.join(p for p in (str(package_root), existing) if p))
    env.insert("PYTHONUNBUFFERED", "1")
    env.insert("PYTHONIOENCODING", "utf-8")
    return env


class TrainingProcess(QObject):
    """One `segstudio train` child. Emits each event as it arrives and one outcome when it has ended."""

    event_received = Signal(dict)
    finished = Signal(object)  # TrainingOutcome

    STDERR_KEEP = 64 * 1024

    def __init__(self, command: Sequence[str] | None = None, *, kill_grace_ms: int = KILL_GRACE_MS,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.command = list(command or default_train_command())
        self.kill_grace_ms = kill_grace_ms
        self.parser = JsonLinesParser()
        self.events: list[dict] = []
        self._stderr = bytearray()
        self._cancel_requested = False
        self._killed = False
        self._reported = False
        self._process: QProcess | None = None
        self._kill_timer = QTimer(self)
        self._kill_timer.setSingleShot(True)
        self._kill_timer.timeout.connect(self._kill)

    # --- control -------------------------------------------------------------------------------
    def start(self, arguments: Sequence[str]) -> None:
        if self.running():
            raise RuntimeError("this training process is already running")
        process = QProcess(self)
        process.setProgram(self.command[0])
        process.setArguments([*self.command[1:], *arguments])
        process.setProcessEnvironment(_child_environment())
        process.setStandardInputFile(QProcess.nullDevice())
        process.readyReadStandardOutput.connect(self._read_stdout)
        process.readyReadStandardError.connect(self._read_stderr)
        process.finished.connect(self._on_finished)
        process.errorOccurred.connect(self._on_error)
        self._process = process
        process.start()

    def running(self) -> bool:
        return self._process is not None and self._process.state() != QProcess.ProcessState.NotRunning

    def cancel(self) -> None:
        """Ask the child to stop (SIGTERM, which `segstudio train` treats as cancel); kill it if it has not
        exited after the grace period. Windows console processes ignore terminate(), so there the kill is
        what stops it; the child's atomic writes make that safe too."""
        if not self.running() or self._cancel_requested:
            return
        self._cancel_requested = True
        self._process.terminate()
        self._kill_timer.start(self.kill_grace_ms)

    def stop_now(self, wait_ms: int = KILL_GRACE_MS) -> None:
        """Stop the child before the window closes: ask, wait a little, then kill."""
        if not self.running():
            return
        self.cancel()
        if not self._process.waitForFinished(wait_ms):
            self._kill()
            self._process.waitForFinished(2000)

    def cancel_requested(self) -> bool:
        return self._cancel_requested

    def stderr_tail(self, lines: int = 15) -> str:
        text = self._stderr.decode("utf-8", "replace").rstrip()
        return "\n".join(text.splitlines()[-lines:])

    # --- child output --------------------------------------------------------------------------
    def _read_stdout(self) -> None:
        self._dispatch(self.parser.feed(bytes(self._process.readAllStandardOutput())))

    def _read_stderr(self) -> None:
        self._stderr += bytes(self._process.readAllStandardError())
        if len(self._stderr) > self.STDERR_KEEP:
            del self._stderr[: len(self._stderr) - self.STDERR_KEEP]

    def _dispatch(self, events: list[dict]) -> None:
        for event in events:
            self.events.append(event)
            self.event_received.emit(event)

    def _kill(self) -> None:
        if self.running():
            self._killed = True
            self._process.kill()

    # --- the end -------------------------------------------------------------------------------
    def _on_error(self, error: QProcess.ProcessError) -> None:
        # A program that never started emits no finished(); every other error is followed by finished().
        if error == QProcess.ProcessError.FailedToStart:
            self._report(TrainingOutcome(
                "failed", f"The training command could not be started ({self.command[0]}): "
                          f"{self._process.errorString()}"))

    def _on_finished(self, exit_code: int, exit_status: QProcess.ExitStatus) -> None:
        self._kill_timer.stop()
        # Whatever arrived after the last readyRead is still in the buffers.
        self._read_stderr()
        self._dispatch(self.parser.feed(bytes(self._process.readAllStandardOutput())))
        self._dispatch(self.parser.finish())
        crashed = exit_status == QProcess.ExitStatus.CrashExit
        self._report(self._outcome(None if crashed else exit_code, crashed))

    def _outcome(self, exit_code: int | None, crashed: bool) -> TrainingOutcome:
        last = {e["event"]: e for e in self.events}
        tail = self.stderr_tail()
        common = dict(exit_code=exit_code, killed=self._killed, stderr_tail=tail)
        done = last.get("done")
        if done is not None and exit_code == 0:
            return TrainingOutcome(
                "done", version=done.get("version"), promoted=bool(done.get("promoted")), parent=done.get("parent"),
                parent_metrics=done.get("parent_metrics"), child_metrics=done.get("child_metrics"),
                done_event=done, **common)
        if self._cancel_requested or "cancelled" in last or exit_code == EXIT_CANCELLED:
            how = " (it did not stop within the grace period and was killed)" if self._killed else ""
            return TrainingOutcome("cancelled", f"Fine-tuning was cancelled{how}; no new model version was saved.",
                                   **common)
        if "error" in last:
            reason = str(last["error"].get("message") or "unknown error")
        elif crashed:
            reason = "The training process crashed or was killed by the system (for example for lack of memory)."
        elif exit_code == 0:
            reason = "The training process ended without reporting a result."
        else:
            reason = f"The training process exited with status {exit_code}."
        if tail and tail not in reason:
            reason += "\n\nLast output of the training process:\n" + tail
        return TrainingOutcome("failed", reason, **common)

    def _report(self, outcome: TrainingOutcome) -> None:
        if not self._reported:
            self._reported = True
            self.finished.emit(outcome)


class TrainingController(QObject):
    """Model > Fine-tune...: the dialog, the child process, the Training dock, the summary.

    ``command`` replaces the program that is run (tests point it at a script printing canned events).
    """

    run_started = Signal(object)  # TrainRequest
    run_finished = Signal(object)  # TrainingOutcome

    def __init__(self, window, command: Sequence[str] | None = None, *, kill_grace_ms: int = KILL_GRACE_MS) -> None:
        super().__init__(window)
        from segstudio.gui.panels.training_panel import TrainingPanel

        self.window = window
        self.command = list(command) if command else None
        self.kill_grace_ms = kill_grace_ms
        self.process: TrainingProcess | None = None
        self.request: TrainRequest | None = None
        self.outcome: TrainingOutcome | None = None
        self.dialog = None
        self.summary_dialog = None

        self.panel = TrainingPanel()
        self.dock = window.add_panel(self.panel, "Training", Qt.DockWidgetArea.BottomDockWidgetArea)
        self.dock.hide()
        self.progress = JobProgress()
        self.progress.setObjectName("trainingProgress")
        self.progress.cancel_button.setToolTip("Stop fine-tuning; the model library stays as it was")
        window.statusBar().addWidget(self.progress)
        self.progress.cancel_requested.connect(self.cancel)
        self.panel.cancel_requested.connect(self.cancel)
        window.actions.fine_tune.triggered.connect(self.show_dialog)
        window.prediction.panel.model_changed.connect(self._update_enabled)
        self._update_enabled()

    # --- starting ------------------------------------------------------------------------------
    def show_dialog(self):
        """Open the Fine-tune dialog (not blocking); OK starts the run."""
        from segstudio.gui.dialogs.finetune import FineTuneDialog

        if self.running():
            return None
        panel = self.window.prediction.panel
        self.dialog = FineTuneDialog(self.window, base=panel.model_id(), device=panel.device())
        self.dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.dialog.accepted.connect(lambda d=self.dialog: self.start(d.request()))
        self.dialog.destroyed.connect(self._forget_dialog)
        self.dialog.open()
        return self.dialog

    def _forget_dialog(self, *_args) -> None:
        self.dialog = None

    def start(self, request: TrainRequest) -> None:
        if self.running():
            raise RuntimeError("a fine-tune is already running")
        self.request = request
        self.outcome = None
        if self.process is not None:
            self.process.deleteLater()
        self.process = TrainingProcess(self.command, kill_grace_ms=self.kill_grace_ms, parent=self)
        self.process.event_received.connect(self._on_event)
        self.process.finished.connect(self._on_finished)
        self.panel.begin(request)
        self.dock.show()
        self.dock.raise_()
        self.progress.start(f"Fine-tuning {request.base}")
        self.run_started.emit(request)
        self.process.start(request.arguments())
        self._update_enabled()

    def running(self) -> bool:
        return self.process is not None and self.process.running()

    def cancel(self) -> None:
        if self.running():
            self.window.statusBar().showMessage("Stopping fine-tuning...", 5000)
            self.panel.set_cancelling()
            self.process.cancel()

    def shutdown(self) -> None:
        if self.process is not None:
            self.process.stop_now(self.kill_grace_ms)

    # --- progress ------------------------------------------------------------------------------
    def _on_event(self, event: dict) -> None:
        self.panel.handle_event(event)
        kind = event["event"]
        if kind == "step":
            try:
                done, total = int(event["step"]), int(event["steps"])
            except (KeyError, TypeError, ValueError):
                return
            eta = event.get("eta_s")
            self.progress.update_progress(done, total, float(eta) if isinstance(eta, (int, float)) else None)
        elif kind == "start" and isinstance(event.get("steps"), int):
            self.progress.update_progress(0, event["steps"])
        elif kind == "oom":
            self.window.statusBar().showMessage(f"Fine-tuning ran out of memory: {event.get('action', '')}", 10000)

    def _on_finished(self, outcome: TrainingOutcome) -> None:
        self.outcome = outcome
        self.progress.finish()
        self.panel.end(outcome)
        self._update_enabled()
        if outcome.status == "done":
            self._show_summary(outcome)
        elif outcome.status == "cancelled":
            self.window.statusBar().showMessage(outcome.message, 10000)
        else:
            self.window.show_error("Fine-tuning failed", outcome.message + "\n\nNo new model version was saved.")
        self.run_finished.emit(outcome)

    def _show_summary(self, outcome: TrainingOutcome) -> None:
        from segstudio.gui.dialogs.finetune import TrainingSummaryDialog

        prediction = self.window.prediction
        # A promoted version becomes the model in use; otherwise it is listed but the selection stays.
        prediction.reload_models(select=outcome.version if outcome.promoted else prediction.panel.model_id())
        self.summary_dialog = TrainingSummaryDialog(outcome, self.window)
        self.summary_dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.summary_dialog.destroyed.connect(lambda *_: setattr(self, "summary_dialog", None))
        self.summary_dialog.open()

    def _update_enabled(self, *_args) -> None:
        # A fine-tune starts from a model version: with an empty library there is nothing to offer.
        has_model = self.window.prediction.panel.model_combo.count() > 0
        self.window.actions.fine_tune.setEnabled(has_model and not self.running())

    # --- closing the window while training -----------------------------------------------------
    def prepare_to_quit(self) -> bool:
        """Whether the window may close: a running fine-tune is only given up if the user says so."""
        if not self.running():
            return True
        answer = QMessageBox.question(
            self.window, "Fine-tuning is running",
            "A fine-tune is still running. Stop it and close segstudio?\n\n"
            "Nothing is saved from an unfinished run; the model library stays as it was.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes
