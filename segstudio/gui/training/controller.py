"""Model > Fine-tune...: the dialog, the `segstudio train` child, the Training dock and the summary.

Training runs as a child process rather than a thread: a crash, an out-of-memory kill or a cancel cannot
take the window or the user's open work with it, and the window and the command line share one training
path. The child writes the new model version atomically and only at the very end, so the window never
writes into the model library: whatever happens to the child, the library holds either the complete new
version or nothing new.
"""
from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QMessageBox

from segstudio.engine.training import events
from segstudio.engine.training.config import TrainConfig
from segstudio.gui.training.dialog import FineTuneDialog, remember_step_time
from segstudio.gui.training.panel import TrainingPanel
from segstudio.gui.training.process import KILL_GRACE_MS, TrainingOutcome, TrainingProcess
from segstudio.gui.training.summary import TrainingSummaryDialog


class TrainingController(QObject):
    """Model > Fine-tune...: the dialog, the child process, the Training dock, the summary.

    ``command`` replaces the program that is run (tests point it at a script printing canned events).
    """

    run_started = Signal(object)  # TrainConfig
    run_finished = Signal(object)  # TrainingOutcome

    def __init__(self, window, command: Sequence[str] | None = None, *, kill_grace_ms: int = KILL_GRACE_MS) -> None:
        super().__init__(window)
        self.window = window
        self.command = list(command) if command else None
        self.kill_grace_ms = kill_grace_ms
        self.process: TrainingProcess | None = None
        self._started: events.Started | None = None
        self.config: TrainConfig | None = None
        self.outcome: TrainingOutcome | None = None
        self.dialog = None
        self.summary_dialog = None

        self.panel = TrainingPanel()
        self.dock = window.add_panel(self.panel, "Training", Qt.DockWidgetArea.BottomDockWidgetArea)
        self.dock.hide()
        # One progress bar and one Cancel, in the Training dock (which opens when a run starts).
        self.panel.cancel_requested.connect(self.cancel)
        window.actions.fine_tune.triggered.connect(self.show_dialog)
        window.prediction.model_changed.connect(self._update_enabled)
        self._update_enabled()

    # --- starting ------------------------------------------------------------------------------
    def show_dialog(self):
        """Open the Fine-tune dialog (not blocking); OK starts the run."""
        if self.running():
            return None
        prediction = self.window.prediction
        self.dialog = FineTuneDialog(self.window, base=prediction.model_id(), device=prediction.device())
        self.dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.dialog.accepted.connect(lambda d=self.dialog: self.start(d.config()))
        self.dialog.destroyed.connect(self._forget_dialog)
        self.dialog.open()
        return self.dialog

    def _forget_dialog(self, *_args) -> None:
        self.dialog = None

    def start(self, config: TrainConfig) -> None:
        if self.running():
            raise RuntimeError("a fine-tune is already running")
        config = self._fit_classes(config)
        if config is None:
            return
        self.config = config
        self.outcome = None
        self._started: events.Started | None = None
        if self.process is not None:
            self.process.deleteLater()
        self.process = TrainingProcess(self.command, kill_grace_ms=self.kill_grace_ms, parent=self)
        self.process.event_received.connect(self._on_event)
        self.process.finished.connect(self._on_finished)
        self.panel.begin(config)
        self.dock.show()
        self.dock.raise_()
        self.run_started.emit(config)
        self.process.start(config)
        self._update_enabled()

    def _fit_classes(self, config: TrainConfig) -> TrainConfig | None:
        """The config to run once the model predicts every class the datasets use, or None (not started).

        A class the model lacks is offered as a new, larger version of the model (nothing is overwritten);
        a mask using an id that no class table names cannot be trained on, and is named before any child runs.
        """
        import dataclasses

        from segstudio.engine.training.class_check import check_dataset_classes
        from segstudio.models.library import ModelLibrary

        try:
            meta = ModelLibrary().find(config.base).meta
        except ValueError:
            return config  # the run says which model it could not find
        check = check_dataset_classes(config.data, meta.class_count)
        if check.refused:
            self.window.show_error("Fine-tuning cannot start", check.refused + ".\n\nName that class in the Classes "
                                   "panel and export the image again, or paint those pixels with another class.")
            return None
        if not check.missing:
            return config
        answer = QMessageBox.question(
            self.window, "The model lacks a class",
            f"The training images use {check.describe_missing()}, which {meta.id} does not predict.\n\n"
            f"Make a new version of {meta.name} with room for them and fine-tune that? Its other classes keep "
            "what they learnt; the new ones start untrained. The version you have stays as it is.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.Yes)
        if answer != QMessageBox.StandardButton.Yes:
            return None
        from segstudio.engine.new_model import extend_classes

        try:
            result = extend_classes(config.base, check.missing)
        except (ValueError, OSError) as err:
            self.window.show_error("Fine-tuning cannot start", f"The model could not be extended: {err}")
            return None
        self.window.prediction.reload_models(select=self.window.prediction.model_id())
        self.window.statusBar().showMessage(f"Made {result.meta.id} with room for {check.describe_missing()}", 10000)
        return dataclasses.replace(config, base=result.meta.id)

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
    def _on_event(self, event: events.TrainingEvent) -> None:
        self.panel.handle_event(event)
        if isinstance(event, events.Started):
            self._started = event
        elif isinstance(event, events.OutOfMemory):
            self.window.statusBar().showMessage(f"Fine-tuning ran out of memory: {event.action}", 10000)

    def _on_finished(self, outcome: TrainingOutcome) -> None:
        self.outcome = outcome
        self._remember_speed(outcome)
        self.panel.end(outcome)
        self._update_enabled()
        if outcome.status == "done":
            self._show_summary(outcome)
        elif outcome.status == "cancelled":
            self.window.statusBar().showMessage(outcome.message, 10000)
        else:
            self.window.show_error("Fine-tuning failed", outcome.message + "\n\nNo new model version was saved.")
        self.run_finished.emit(outcome)

    def _remember_speed(self, outcome: TrainingOutcome) -> None:
        """Keep this run's time per training pixel, so the next dialog's estimate is measured, not guessed."""
        done, started, config = outcome.done_event, self._started, self.config
        if outcome.status != "done" or done is None or config is None or not done.steps:
            return
        train_s = (done.timing or {}).get("train_s")
        if not isinstance(train_s, (int, float)):
            return
        from segstudio.models.library import ModelLibrary

        try:
            arch = ModelLibrary().find(config.base).meta.arch
        except Exception:  # noqa: BLE001 - an estimate is not worth an error message
            return
        crop = started.crop if started is not None and started.crop else config.crop
        batch = started.batch if started is not None and started.batch else config.batch_size
        remember_step_time(arch, config.device, train_s / (done.steps * batch * crop * crop))

    def _show_summary(self, outcome: TrainingOutcome) -> None:
        prediction = self.window.prediction
        # A promoted version becomes the model in use; otherwise it is listed but the selection stays.
        prediction.reload_models(select=outcome.version if outcome.promoted else prediction.model_id())
        self.summary_dialog = TrainingSummaryDialog(outcome, self.window)
        self.summary_dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.summary_dialog.destroyed.connect(lambda *_: setattr(self, "summary_dialog", None))
        self.summary_dialog.open()

    def _update_enabled(self, *_args) -> None:
        # A fine-tune starts from a model version: with an empty library there is nothing to offer.
        has_model = self.window.prediction.has_models()
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
