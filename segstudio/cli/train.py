"""`segstudio train`: fine-tune a model on dataset folders from the command line.

The window runs this same command as a child process with `--progress jsonl` and reads one JSON event
per line from stdout; it cancels by sending SIGTERM. SIGINT (Ctrl-C) and SIGTERM both ask the training
loop to stop at the next step and write nothing; a second Ctrl-C interrupts at once (still without a
partial file, because every write is atomic).

Exit status (events.ExitCode): 0 trained and saved, 1 failed (the message is on stderr and in the
"error" event), 130 cancelled. Under torchrun only rank 0 prints anything.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import traceback

from segstudio.core.text import printable
from segstudio.core.words import count
from segstudio.engine.training import events
from segstudio.engine.training.config import TrainConfig, add_arguments
from segstudio.engine.training.events import ExitCode


def register(subparsers) -> None:
    """Add `segstudio train` with the options of every TrainConfig field, and how progress is shown."""
    parser = subparsers.add_parser("train", help="fine-tune a model version on dataset folders")
    add_arguments(parser)
    parser.add_argument("--progress", choices=("bar", "jsonl", "none"), default="bar",
                        help="bar (stderr), jsonl (one JSON event per line on stdout) or none")
    parser.add_argument("--extend-classes", action="store_true",
                        help="when the datasets use classes the model lacks, first make a new version of it with "
                             "room for them (its other weights kept), and fine-tune that")
    parser.set_defaults(run=run)


class _JsonlReporter:
    def __init__(self, stream):
        self.stream = stream

    def __call__(self, event: events.TrainingEvent) -> None:
        self.stream.write(event.to_json() + "\n")
        self.stream.flush()


class _BarReporter:
    """A one-line progress bar on stderr, with epoch results and the outcome on their own lines."""

    def __init__(self, out, err):
        self.out, self.err = out, err

    def __call__(self, event: events.TrainingEvent) -> None:
        if isinstance(event, events.Started):
            for note in event.notes:
                self.err.write(f"note: {printable(note)}\n")
            self.err.write(f"fine-tuning {printable(event.base)} on {count(event.train_images, 'image')} "
                           f"({event.val_images} for validation) on {event.device}\n")
        elif isinstance(event, events.Evaluated):
            self.err.write(f"parent: {_summary(event.val)}\n")
        elif isinstance(event, events.StepProgress):
            n, total = event.step, max(1, event.steps)
            filled = int(30 * n / total)
            self.err.write(f"\r[{'#' * filled}{'.' * (30 - filled)}] {n}/{total} loss {event.loss:.4f} "
                           f"eta {_duration(event.eta_s)}   ")
        elif isinstance(event, events.EpochProgress):
            self.err.write(f"\nepoch {event.epoch}: {_summary(event.val)}\n")
        elif isinstance(event, events.OutOfMemory):
            self.err.write(f"\nout of memory: {event.action}\n")
        elif isinstance(event, events.Finished):
            state = "now active" if event.promoted else "not promoted: below its parent"
            self.out.write(f"saved {printable(event.version)} ({state}); parent {_summary(event.parent_metrics)}; "
                           f"new {_summary(event.child_metrics)}\n")
        elif isinstance(event, events.Cancelled):
            self.err.write("\ncancelled: nothing was saved\n")
        elif isinstance(event, events.Failed):
            self.err.write(f"\nerror: {printable(event.message)}\n")
        self.err.flush()
        self.out.flush()


def _summary(metrics: dict | None) -> str:
    if not metrics:
        return "no metrics"
    parts = []
    if metrics.get("mean_iou") is not None:
        parts.append(f"mean IoU {metrics['mean_iou']:.3f}")
    if metrics.get("loss") is not None:
        parts.append(f"loss {metrics['loss']:.4f}")
    return ", ".join(parts) or "no metrics"


def _duration(seconds) -> str:
    if seconds is None:
        return "?"
    seconds = int(seconds)
    return f"{seconds // 60}m{seconds % 60:02d}s"


class _StopRequest:
    """SIGINT/SIGTERM ask for a clean stop; a second SIGINT interrupts at once."""

    def __init__(self):
        self.event = threading.Event()
        self._previous: dict[int, object] = {}

    def __call__(self) -> bool:
        return self.event.is_set()

    def _handle(self, signum, frame):
        if self.event.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.event.set()

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signals can only be handled on the main thread; the caller's cancel still works
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()


def run(args: argparse.Namespace) -> int:
    # Handlers first: a cancel that arrives while torch is still importing must also exit with 130.
    stop = _StopRequest()
    stop.install()
    real_stdout = sys.stdout
    main_rank = int(os.environ.get("RANK", "0") or 0) == 0  # torchrun sets RANK; only rank 0 reports
    reporter = None
    if main_rank and args.progress == "jsonl":
        reporter = _JsonlReporter(real_stdout)
        # Anything else printed (library warnings...) must not break the event stream.
        sys.stdout = sys.stderr
    elif main_rank and args.progress == "bar":
        reporter = _BarReporter(real_stdout, sys.stderr)
    reported_error = False

    def progress(event: events.TrainingEvent) -> None:
        nonlocal reported_error
        reported_error = reported_error or isinstance(event, events.Failed)
        if reporter is not None:
            reporter(event)

    try:
        return _train(args, progress, stop)
    except KeyboardInterrupt:
        if not reported_error:
            progress(events.Cancelled())
        return ExitCode.CANCELLED
    except Exception as e:  # noqa: BLE001 - the exit status and the message are the interface here
        from segstudio.engine.training.errors import TrainingError

        if not reported_error:
            progress(events.Failed(str(e)))
        if not isinstance(e, TrainingError):  # a failure the message does not explain gets its traceback
            traceback.print_exc(file=sys.stderr)
        elif not (main_rank and args.progress == "bar"):
            sys.stderr.write(f"error: {printable(e)}\n")
        return ExitCode.FAILED
    finally:
        stop.restore()
        sys.stdout = real_stdout


def _train(args: argparse.Namespace, progress, stop: _StopRequest) -> ExitCode:
    from segstudio.engine.training.loop import fine_tune

    if stop():  # asked to stop while torch was importing
        progress(events.Cancelled())
        return ExitCode.CANCELLED
    config = TrainConfig.from_namespace(args)
    if getattr(args, "extend_classes", False):
        config = _extended(config)
    result = fine_tune(config, progress=progress, cancel=stop)
    return ExitCode.OK if result.status == "done" else ExitCode.CANCELLED


def _extended(config: TrainConfig) -> TrainConfig:
    """The config with its base replaced by a version that predicts every class the datasets use."""
    import dataclasses

    from segstudio.engine.new_model import extend_classes
    from segstudio.engine.training.class_check import check_dataset_classes
    from segstudio.engine.training.errors import TrainingError
    from segstudio.models.library import ModelLibrary

    try:
        meta = ModelLibrary().find(config.base).meta
    except ValueError as err:
        raise TrainingError(str(err)) from None
    check = check_dataset_classes(config.data, meta.class_count)
    if check.refused:
        raise TrainingError(check.refused)
    if not check.missing:
        return config
    result = extend_classes(config.base, check.missing)
    sys.stderr.write(f"Made {result.meta.id} with room for {check.describe_missing()}; fine-tuning it\n")
    return dataclasses.replace(config, base=result.meta.id)
