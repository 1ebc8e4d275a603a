"""The `segstudio train ... --progress jsonl` child process and the parser of its event stream.

A child process rather than a thread: a crash, an out-of-memory kill or a cancel cannot take the window or
the user's open work with it, and the window and the command line share one training path. The child
writes one JSON event per line on stdout; stderr is kept (bounded) for error reports. The child writes the
new model version atomically and only at the very end, so the window never writes into the model library:
whatever happens to the child, the library holds either the complete new version or nothing new.
"""
from __future__ import annotations

import os
import sys
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, QProcess, QProcessEnvironment, QTimer, Signal

from segstudio.engine.training import events
from segstudio.engine.training.config import TrainConfig
from segstudio.engine.training.events import ExitCode

#: How long a child may take to stop after SIGTERM before it is killed.
KILL_GRACE_MS = 10_000


class JsonLinesParser:
    """Turns the child's stdout, read in arbitrary chunks, into typed events (engine.training.events).

    A line may arrive split across reads, so the unterminated tail is kept until its newline comes. Lines
    that are not an event (a stray print from a library, a torn write, an unknown kind, a field of the
    wrong type) are set aside in ``ignored`` instead of stopping the stream.
    """

    MAX_LINE = 1 << 20  # a "line" this long without a newline is not an event: drop it, bound the memory

    def __init__(self) -> None:
        self._pending = b""
        self.ignored: deque[str] = deque(maxlen=20)

    def feed(self, chunk: bytes) -> list[events.TrainingEvent]:
        data = self._pending + bytes(chunk)
        lines = data.split(b"\n")
        self._pending = lines.pop()
        if len(self._pending) > self.MAX_LINE:
            self.ignored.append(self._pending[:200].decode("utf-8", "replace") + "...")
            self._pending = b""
        return [event for line in lines if (event := self._parse(line)) is not None]

    def finish(self) -> list[events.TrainingEvent]:
        """Events in a last line that ended without a newline (the stream is closed)."""
        tail, self._pending = self._pending, b""
        event = self._parse(tail)
        return [event] if event is not None else []

    def _parse(self, raw: bytes) -> events.TrainingEvent | None:
        text = raw.decode("utf-8", "replace").strip()
        if not text:
            return None
        try:
            return events.from_json(text)
        except ValueError:  # json's own errors are ValueErrors too
            self.ignored.append(text[:200])
            return None


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
    done_event: events.Finished | None = None


def train_arguments(config: TrainConfig) -> list[str]:
    """The `segstudio train` options for `config`, with the JSON-lines progress this process reads."""
    return [*config.to_argv(), "--progress", "jsonl"]


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
    package_root = Path(__file__).resolve().parents[3]
    if not getattr(sys, "frozen", False) and package_root.name not in ("site-packages", "dist-packages"):
        existing = env.value("PYTHONPATH", "")
        env.insert("PYTHONPATH", os.pathsep.join(p for p in (str(package_root), existing) if p))
    env.insert("PYTHONUNBUFFERED", "1")
    env.insert("PYTHONIOENCODING", "utf-8")
    return env


class TrainingProcess(QObject):
    """One `segstudio train` child. Emits each event as it arrives and one outcome when it has ended."""

    event_received = Signal(object)  # an engine.training.events.TrainingEvent
    finished = Signal(object)  # TrainingOutcome

    STDERR_KEEP = 64 * 1024

    def __init__(self, command: Sequence[str] | None = None, *, kill_grace_ms: int = KILL_GRACE_MS,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.command = list(command or default_train_command())
        self.kill_grace_ms = kill_grace_ms
        self.parser = JsonLinesParser()
        self.events: list[events.TrainingEvent] = []
        self._stderr = bytearray()
        self._cancel_requested = False
        self._killed = False
        self._reported = False
        self._process: QProcess | None = None
        self._kill_timer = QTimer(self)
        self._kill_timer.setSingleShot(True)
        self._kill_timer.timeout.connect(self._kill)

    # --- control -------------------------------------------------------------------------------
    def start(self, config: TrainConfig) -> None:
        """Run `segstudio train` with the options that describe `config`, reporting JSON lines."""
        self._launch(train_arguments(config))

    def _launch(self, arguments: Sequence[str]) -> None:
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

    def _dispatch(self, received: list[events.TrainingEvent]) -> None:
        for event in received:
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
        last = {type(e): e for e in self.events}
        tail = self.stderr_tail()
        common = dict(exit_code=exit_code, killed=self._killed, stderr_tail=tail)
        done = last.get(events.Finished)
        if done is not None and exit_code == ExitCode.OK:
            return TrainingOutcome(
                "done", version=done.version, promoted=bool(done.promoted), parent=done.parent,
                parent_metrics=done.parent_metrics, child_metrics=done.child_metrics, done_event=done, **common)
        if self._cancel_requested or events.Cancelled in last or exit_code == ExitCode.CANCELLED:
            how = " (it did not stop within the grace period and was killed)" if self._killed else ""
            return TrainingOutcome("cancelled", f"Fine-tuning was cancelled{how}; no new model version was saved.",
                                   **common)
        if events.Failed in last:
            reason = last[events.Failed].message or "unknown error"
            # `segstudio train` also prints the message on stderr for people at a terminal: say it once here.
            tail = "\n".join(line for line in tail.splitlines() if line.strip() != f"error: {reason}").strip()
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
