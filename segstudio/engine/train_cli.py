"""`segstudio train`: fine-tune a model on dataset folders from the command line.

The window runs this same command as a child process with `--progress jsonl` and reads one JSON event
per line from stdout; it cancels by sending SIGTERM. SIGINT (Ctrl-C) and SIGTERM both ask the training
loop to stop at the next step and write nothing; a second Ctrl-C interrupts at once (still without a
partial file, because every write is atomic).

Exit status: 0 trained and saved, 1 failed (the message is on stderr and in the "error" event),
130 cancelled. Under torchrun only rank 0 prints anything.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import threading
import traceback

EXIT_OK, EXIT_FAILED, EXIT_CANCELLED = 0, 1, 130


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True,
                        help="base model: id (name/vN), family name (its newest version) or .safetensors file")
    parser.add_argument("--data", action="append", required=True, metavar="DIR",
                        help="dataset folder written by `segstudio export` (repeat for several)")
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=int, default=None, help="passes over the training crops (default 20)")
    length.add_argument("--steps", type=int, default=None, help="optimisation steps instead of epochs")
    parser.add_argument("--lr", type=float, default=3e-4, help="peak learning rate (default 3e-4)")
    parser.add_argument("--batch", type=int, default=8, help="crops per step and per process (default 8)")
    parser.add_argument("--crop", type=int, default=256, help="crop size in pixels (default 256)")
    parser.add_argument("--freeze-encoder", action="store_true",
                        help="train only the decoder; encoder weights and norm statistics stay as they are")
    parser.add_argument("--no-augment", action="store_true", help="no flips, rotations or intensity changes")
    parser.add_argument("--augment-strength", type=float, default=1.0,
                        help="scale of rotation angle and intensity changes (default 1.0)")
    parser.add_argument("--hand-weight", type=float, default=3.0,
                        help="loss weight of pixels corrected by hand (1 = no extra weight; default 3)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    parser.add_argument("--no-amp", action="store_true", help="full precision on GPU")
    parser.add_argument("--workers", type=int, default=-1, help="data loader processes (default: automatic)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--name", default=None, help="model family of the new version (default: the base's)")
    parser.add_argument("--force-promote", action="store_true",
                        help="make the new version active even if it scores below its parent")
    parser.add_argument("--progress", choices=("bar", "jsonl", "none"), default="bar",
                        help="bar (stderr), jsonl (one JSON event per line on stdout) or none")


def config_from_args(args: argparse.Namespace):
    from segstudio.engine.train import TrainConfig

    return TrainConfig(
        base=args.model,
        data=list(args.data),
        epochs=args.epochs if args.epochs is not None else 20,
        steps=args.steps,
        lr=args.lr,
        batch_size=args.batch,
        crop=args.crop,
        freeze_encoder=args.freeze_encoder,
        augment=not args.no_augment,
        augment_strength=args.augment_strength,
        hand_weight=args.hand_weight,
        amp=not args.no_amp,
        device=args.device,
        seed=args.seed,
        num_workers=args.workers,
        name=args.name,
        force_promote=args.force_promote,
    )


def _finite(obj):
    """JSON has no NaN/Infinity: report them as null so every line stays parseable."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


class _JsonlReporter:
    def __init__(self, stream):
        self.stream = stream

    def __call__(self, event: dict) -> None:
        self.stream.write(json.dumps(_finite(event), default=str) + "\n")
        self.stream.flush()


class _BarReporter:
    """A one-line progress bar on stderr, with epoch results and the outcome on their own lines."""

    def __init__(self, out, err):
        self.out, self.err = out, err

    def __call__(self, event: dict) -> None:
        kind = event.get("event")
        if kind == "start":
            for note in event.get("notes", []):
                self.err.write(f"note: {note}\n")
            self.err.write(f"fine-tuning {event['base']} on {event['train_images']} images "
                           f"({event['val_images']} for validation) on {event['device']}\n")
        elif kind == "evaluated":
            self.err.write(f"parent: {_summary(event['val'])}\n")
        elif kind == "step":
            n, total = event["step"], max(1, event["steps"])
            filled = int(30 * n / total)
            self.err.write(f"\r[{'#' * filled}{'.' * (30 - filled)}] {n}/{total} loss {event['loss']:.4f} "
                           f"eta {_duration(event.get('eta_s'))}   ")
        elif kind == "epoch":
            self.err.write(f"\nepoch {event['epoch']}: {_summary(event['val'])}\n")
        elif kind == "oom":
            self.err.write(f"\nout of memory: {event['action']}\n")
        elif kind == "done":
            state = "now active" if event["promoted"] else "not promoted: below its parent"
            self.out.write(f"saved {event['version']} ({state}); parent {_summary(event['parent_metrics'])}; "
                           f"new {_summary(event['child_metrics'])}\n")
        elif kind == "cancelled":
            self.err.write("\ncancelled: nothing was saved\n")
        elif kind == "error":
            self.err.write(f"\nerror: {event['message']}\n")
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


def _is_training_error(e: BaseException) -> bool:
    """A failure the message explains (bad data, NaN loss...); anything else also gets its traceback."""
    try:
        from segstudio.engine.train import TrainingError
    except ImportError:
        return False
    return isinstance(e, TrainingError)


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

    def progress(event: dict) -> None:
        nonlocal reported_error
        reported_error = reported_error or event.get("event") == "error"
        if reporter is not None:
            reporter(event)

    try:
        from segstudio.engine.train import fine_tune

        if stop():  # asked to stop while torch was importing
            progress({"event": "cancelled"})
            return EXIT_CANCELLED
        result = fine_tune(config_from_args(args), progress=progress, cancel=stop)
        return EXIT_OK if result.status == "done" else EXIT_CANCELLED
    except KeyboardInterrupt:
        if not reported_error:
            progress({"event": "cancelled"})
        return EXIT_CANCELLED
    except Exception as e:  # noqa: BLE001 - the exit status and the message are the interface here
        if not reported_error:
            progress({"event": "error", "message": str(e)})
        if not _is_training_error(e):
            traceback.print_exc(file=sys.stderr)
        elif not (main_rank and args.progress == "bar"):
            sys.stderr.write(f"error: {e}\n")
        return EXIT_FAILED
    finally:
        stop.restore()
        sys.stdout = real_stdout
