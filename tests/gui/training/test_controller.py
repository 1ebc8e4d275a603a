"""Model > Fine-tune: the `segstudio train` child process run from the window, cancel and every ending.

Two tests run the real `segstudio train` on a tiny U-Net and a tiny dataset; the others point the controller
at small scripts that print canned events, so every way a child can end is covered without training.
"""
from __future__ import annotations

import json
import sys
import textwrap

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from segstudio.engine.training import events
from segstudio.engine.training.config import TrainConfig
from segstudio.gui.training.controller import TrainingController
from segstudio.gui.training.process import train_arguments
from tests.gui.training.fixtures import save_tiny_unet, user_data_snapshot


def fake_child(tmp_path, body: str) -> list[str]:
    """A command that behaves like `segstudio train`: it records its arguments, then runs `body`."""
    script = tmp_path / "fake_train.py"
    script.write_text(textwrap.dedent("""
        import json, os, signal, sys, time
        with open(os.path.join(os.path.dirname(__file__), "argv.json"), "w") as f:
            json.dump(sys.argv[1:], f)
        def emit(**event):
            sys.stdout.write(json.dumps(event) + "\\n")
            sys.stdout.flush()
    """) + textwrap.dedent(body))
    return [sys.executable, str(script)]


def replace_controller(window, command, kill_grace_ms=10_000) -> TrainingController:
    """A controller wired like the window's own, but running `command` instead of `segstudio train`."""
    window.actions.fine_tune.triggered.disconnect()
    window.removeDockWidget(window.training.dock)
    controller = TrainingController(window, command, kill_grace_ms=kill_grace_ms)
    window.training = controller
    return controller


@pytest.fixture
def stop_training(window):
    yield
    window.training.shutdown()  # never leave a child behind a failed test


def run_to_end(qtbot, controller, config: TrainConfig, timeout=30_000):
    with qtbot.waitSignal(controller.run_finished, timeout=timeout) as blocker:
        controller.start(config)
    return blocker.args[0]


def visible_errors(window):
    return [b for b in window.findChildren(QMessageBox) if b.isVisible() and b.objectName() == "errorDialog"]


# --- with the real `segstudio train` -----------------------------------------------------------
@pytest.mark.slow
def test_fine_tune_end_to_end_adds_a_version_and_shows_the_summary(window, qtbot, tiny_setup, stop_training):
    from segstudio.models.library import ModelLibrary

    base, data = tiny_setup
    controller = window.training
    window.actions.fine_tune.trigger()
    dialog = controller.dialog
    dialog.length_unit.setCurrentIndex(dialog.length_unit.findData("steps"))
    dialog.length_spin.setValue(6)
    dialog.batch_spin.setValue(2)
    dialog.crop_spin.setValue(48)
    dialog.lr_spin.setValue(1e-2)
    dialog.device_combo.setCurrentIndex(dialog.device_combo.findData("cpu"))
    dialog.accept()
    assert controller.running() and not window.actions.fine_tune.isEnabled()
    assert controller.dock.isVisible() and controller.panel.cancel_button.isEnabled()
    # One progress bar and one Cancel: the Training dock's; the status bar offers no second one.
    from PySide6.QtWidgets import QProgressBar, QPushButton

    status = window.statusBar()
    assert not [b for b in status.findChildren(QPushButton) if b.isVisible() and "Cancel" in b.text()]
    assert not [b for b in status.findChildren(QProgressBar) if b.isVisible()]
    qtbot.waitUntil(lambda: controller.outcome is not None, timeout=120_000)

    outcome = controller.outcome
    assert outcome.status == "done", outcome.message
    assert outcome.version == "blobs/v2" and outcome.exit_code == 0
    entry = ModelLibrary().find("blobs/v2")
    assert entry.meta.parent == base and not entry.bundled
    assert entry.meta.training["steps"] == 6
    assert (ModelLibrary().active_id() == "blobs/v2") == outcome.promoted
    assert window.prediction.panel.model_id() == ("blobs/v2" if outcome.promoted else base)
    assert window.prediction.panel.model_combo.findData("blobs/v2") >= 0

    summary = controller.summary_dialog
    assert summary is not None and summary.isVisible()
    rows = [summary.table.verticalHeaderItem(r).text() for r in range(summary.table.rowCount())]
    assert rows[:3] == ["Mean IoU", "IoU: background", "IoU: nucleus"]
    parent_iou = outcome.parent_metrics["iou"]["background"]
    assert summary.table.item(1, 0).text() == f"{parent_iou:.3f}"
    assert summary.table.item(1, 1).text() == f"{outcome.child_metrics['iou']['background']:.3f}"
    assert ("because the new version scored lower" in summary.verdict.text()) != outcome.promoted
    assert ("now in use" in summary.verdict.text()) == outcome.promoted
    # The run's speed is kept, so the next dialog's time estimate is measured on this computer.
    from PySide6.QtCore import QSettings

    from segstudio.gui.training.dialog import seconds_per_pixel, step_time_key

    assert float(QSettings().value(step_time_key("unet", "cpu"), 0)) > 0
    assert seconds_per_pixel("unet", "cpu")[1]

    plot = controller.panel.plot
    assert plot.losses and plot.losses[-1][0] == 6
    assert len(plot.ious) >= 1 and plot.parent_iou == pytest.approx(outcome.parent_metrics["mean_iou"])
    assert controller.panel.bar.value() == controller.panel.bar.maximum() == 6
    assert not controller.panel.cancel_button.isEnabled() and window.actions.fine_tune.isEnabled()
    assert not visible_errors(window)
    summary.close()


@pytest.mark.slow
def test_cancel_stops_the_child_and_leaves_the_library_unchanged(window, qtbot, tiny_setup, stop_training):
    base, data = tiny_setup
    controller = window.training
    before = user_data_snapshot()
    dataset_before = {p.name: p.stat().st_mtime_ns for p in data.rglob("*")}
    config = TrainConfig(base=base, data=[str(data)], steps=100_000, batch_size=2, crop=48, lr=1e-3, device="cpu")
    controller.start(config)
    qtbot.waitUntil(lambda: any(isinstance(e, events.StepProgress) for e in controller.process.events),
                    timeout=120_000)
    assert controller.running()
    with qtbot.waitSignal(controller.run_finished, timeout=60_000) as blocker:
        qtbot.mouseClick(controller.panel.cancel_button, Qt.MouseButton.LeftButton)
    outcome = blocker.args[0]
    assert outcome.status == "cancelled" and not outcome.killed
    assert outcome.exit_code == 130  # the child stopped itself on SIGTERM
    assert controller.process.events[-1] == events.Cancelled()
    assert user_data_snapshot() == before  # no new version, no temp file, active model unchanged
    assert {p.name: p.stat().st_mtime_ns for p in data.rglob("*")} == dataset_before
    assert window.prediction.panel.model_id() == base
    assert controller.summary_dialog is None and not visible_errors(window)
    assert "no new model version" in window.statusBar().currentMessage()
    assert "Cancelled" in controller.panel.title.text()


# --- every other ending, with stand-in children ----------------------------------------------------
def test_progress_reaches_the_training_panel_and_garbage_is_ignored(window, qtbot, tmp_path, stop_training):
    command = fake_child(tmp_path, """
        emit(event="start", base="blobs/v1", name="blobs", steps=4, train_images=6, val_images=2, device="CPU")
        print("a stray line from a library", flush=True)
        emit(event="evaluated", model="parent", val={"mean_iou": 0.4})
        for step, loss in enumerate([0.9, 0.7, 0.6, 0.5], start=1):
            line = json.dumps({"event": "step", "step": step, "steps": 4, "loss": loss, "eta_s": 125 - step})
            sys.stdout.write(line[:10]); sys.stdout.flush(); time.sleep(0.02)   # a line in two writes
            sys.stdout.write(line[10:] + "\\n"); sys.stdout.flush()
            if step % 2 == 0:
                emit(event="epoch", epoch=step // 2, step=step, val={"mean_iou": 0.4 + 0.1 * step})
        emit(event="oom", action="retrying with batch 2 (was 4)")
        emit(event="error", message="Cannot write the new version: disk full")
        sys.stderr.write("error: Cannot write the new version: disk full\\n")  # as `segstudio train` does
        sys.exit(1)
    """)
    controller = replace_controller(window, command)
    seen = []
    controller.run_started.connect(lambda _r: controller.process.event_received.connect(
        lambda e: seen.append((e.kind, controller.panel.bar.value(), controller.panel.eta.text()))))
    outcome = run_to_end(qtbot, controller, TrainConfig(base="blobs/v1", data=["/data"], steps=4))
    steps = [s for s in seen if s[0] == "step"]
    assert [s[1] for s in steps] == [1, 2, 3, 4]
    assert steps[0][2] == "2 min 04 s left"
    assert controller.panel.plot.losses == [(1, 0.9), (2, 0.7), (3, 0.6), (4, 0.5)]
    assert controller.panel.plot.ious == [(2, pytest.approx(0.6)), (4, pytest.approx(0.8))]
    assert controller.panel.plot.parent_iou == 0.4
    assert "a stray line from a library" in controller.process.parser.ignored
    assert "retrying with batch 2" in controller.panel.notes.text()
    # The error event is what the user is told, and nothing claims a new version.
    assert outcome.status == "failed" and outcome.exit_code == 1
    assert "disk full" in window.last_error and "No new model version was saved" in window.last_error
    assert window.last_error.count("disk full") == 1 and "disk full" not in controller.panel.notes.text()
    assert visible_errors(window) and controller.summary_dialog is None
    assert "Failed: Cannot write the new version: disk full" in controller.panel.title.text()


def test_arguments_reach_the_child(window, qtbot, tmp_path, stop_training):
    command = fake_child(tmp_path, 'emit(event="cancelled"); sys.exit(130)')
    controller = replace_controller(window, command)
    config = TrainConfig(base="blobs/v1", data=["/a", "/b"], epochs=3, lr=0.002, batch_size=4, crop=64,
                         freeze_encoder=True, augment=False, hand_weight=2.0, device="cpu")
    run_to_end(qtbot, controller, config)
    argv = json.loads((tmp_path / "argv.json").read_text())
    assert argv == train_arguments(config) == [*config.to_argv(), "--progress", "jsonl"]
    assert argv[:6] == ["--model", "blobs/v1", "--data", "/a", "--data", "/b"]


def test_crash_reports_the_stderr_tail(window, qtbot, tmp_path, stop_training):
    command = fake_child(tmp_path, """
        emit(event="start", steps=10)
        emit(event="step", step=1, steps=10, loss=1.0, eta_s=9)
        sys.stderr.write("CUDA driver: fatal fault in kernel launch\\n"); sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    controller = replace_controller(window, command)
    outcome = run_to_end(qtbot, controller, TrainConfig(base="m/v1", data=["/d"]))
    assert outcome.status == "failed" and outcome.exit_code is None
    assert "crashed or was killed" in outcome.message
    assert "fatal fault in kernel launch" in outcome.message and "fatal fault" in window.last_error


def test_nonzero_exit_without_an_event_shows_stderr(window, qtbot, tmp_path, stop_training):
    command = fake_child(tmp_path, """
        sys.stderr.write("Traceback (most recent call last):\\nImportError: libcudart.so.12 missing\\n")
        sys.exit(3)
    """)
    controller = replace_controller(window, command)
    outcome = run_to_end(qtbot, controller, TrainConfig(base="m/v1", data=["/d"]))
    assert outcome.status == "failed" and outcome.exit_code == 3
    assert "exited with status 3" in outcome.message and "libcudart.so.12 missing" in outcome.message


def test_a_command_that_cannot_start_is_reported(window, qtbot, tmp_path, stop_training):
    controller = replace_controller(window, [str(tmp_path / "no-such-python")])
    outcome = run_to_end(qtbot, controller, TrainConfig(base="m/v1", data=["/d"]))
    assert outcome.status == "failed" and "could not be started" in outcome.message
    assert window.actions.fine_tune.isEnabled() is (window.prediction.panel.model_combo.count() > 0)
    assert not controller.running() and not controller.panel.cancel_button.isEnabled()


def test_a_child_ignoring_sigterm_is_killed_after_the_grace_period(window, qtbot, tmp_path, stop_training):
    command = fake_child(tmp_path, """
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        emit(event="start", steps=1000)
        emit(event="step", step=1, steps=1000, loss=1.0, eta_s=999)
        while True:
            time.sleep(0.05)
    """)
    controller = replace_controller(window, command, kill_grace_ms=300)
    controller.start(TrainConfig(base="m/v1", data=["/d"]))
    qtbot.waitUntil(lambda: bool(controller.process.events), timeout=20_000)
    with qtbot.waitSignal(controller.run_finished, timeout=20_000) as blocker:
        controller.panel.cancel_button.click()
    outcome = blocker.args[0]
    assert outcome.status == "cancelled" and outcome.killed
    assert "killed" in outcome.message and not visible_errors(window)


def test_a_promoted_version_is_selected_in_the_model_panel(window, qtbot, tmp_path, stop_training):
    base = save_tiny_unet()
    save_tiny_unet(version=2, activate=False)  # what the child would have written
    window.prediction.reload_models()
    assert window.prediction.panel.model_id() == base
    metrics = {"parent_metrics": {"mean_iou": 0.5, "iou": {"background": 0.9, "nucleus": 0.5}, "loss": 0.4},
               "child_metrics": {"mean_iou": 0.75, "iou": {"background": 0.95, "nucleus": 0.75}, "loss": 0.2}}
    command = fake_child(tmp_path, f"""
        emit(event="done", version="blobs/v2", promoted=True, parent="blobs/v1", steps=6, epochs=2,
             timing={{"total_s": 12.0}}, **{json.dumps(metrics)})
    """)
    controller = replace_controller(window, command)
    outcome = run_to_end(qtbot, controller, TrainConfig(base=base, data=["/d"]))
    assert outcome.status == "done" and outcome.promoted
    assert window.prediction.panel.model_id() == "blobs/v2"
    table = controller.summary_dialog.table
    assert [table.item(0, c).text() for c in range(3)] == ["0.500", "0.750", "+0.250"]
    assert [table.item(2, c).text() for c in range(3)] == ["0.500", "0.750", "+0.250"]  # IoU: nucleus
    assert "now in use" in controller.summary_dialog.verdict.text()
    assert "Finished: <b>blobs/v2</b> saved, now in use." == controller.panel.title.text()


def test_a_version_below_its_parent_is_listed_but_not_selected(window, qtbot, tmp_path, stop_training):
    base = save_tiny_unet()
    save_tiny_unet(version=2, activate=False)
    window.prediction.reload_models()
    command = fake_child(tmp_path, """
        emit(event="done", version="blobs/v2", promoted=False, parent="blobs/v1",
             parent_metrics={"mean_iou": 0.6, "iou": {"nucleus": 0.6}},
             child_metrics={"mean_iou": 0.5, "iou": {"nucleus": 0.5}})
    """)
    controller = replace_controller(window, command)
    outcome = run_to_end(qtbot, controller, TrainConfig(base=base, data=["/d"]))
    assert outcome.status == "done" and not outcome.promoted
    assert window.prediction.panel.model_id() == base
    assert window.prediction.panel.model_combo.findData("blobs/v2") >= 0
    assert "because the new version scored lower on the images set aside" in \
        controller.summary_dialog.verdict.text()
    assert controller.summary_dialog.table.item(0, 2).text() == "-0.100"


def test_closing_the_window_during_a_run_asks_and_then_stops_the_child(window, qtbot, tmp_path, monkeypatch,
                                                                        stop_training):
    from segstudio.gui.training import controller as controller_module

    command = fake_child(tmp_path, """
        signal.signal(signal.SIGTERM, lambda *_: (emit(event="cancelled"), sys.exit(130)))
        emit(event="start", steps=1000)
        while True:
            time.sleep(0.05)
    """)
    controller = replace_controller(window, command)
    controller.start(TrainConfig(base="m/v1", data=["/d"]))
    qtbot.waitUntil(lambda: bool(controller.process.events), timeout=20_000)
    answers = [QMessageBox.StandardButton.No, QMessageBox.StandardButton.Yes]
    monkeypatch.setattr(controller_module.QMessageBox, "question", lambda *a, **k: answers.pop(0))

    assert not window.close()  # "No": the window and the run carry on
    assert window.isVisible() and controller.running()
    assert window.close()  # "Yes": the child is asked to stop before the window goes
    assert not controller.running() and not answers
    assert controller.outcome.status == "cancelled" and not controller.outcome.killed
