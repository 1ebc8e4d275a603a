"""`segstudio train`: the JSON-lines stream the window reads, exit codes, and what signals leave behind."""
from __future__ import annotations

import argparse
import json
import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from segstudio.engine.training.config import TrainConfig
from segstudio.engine.training.events import ExitCode
from tests.engine.training.test_loop import (
    active_id,
    assert_library_unchanged,
    library_snapshot,
    save_base_model,
    write_dataset,
)

REPO = Path(__file__).resolve().parents[2]


def _common_args(base: str, data: Path) -> list[str]:
    return ["--model", base, "--data", str(data), "--batch", "4", "--crop", "48", "--device", "cpu",
            "--lr", "0.01", "--workers", "0"]


@pytest.fixture
def blobs(tmp_path):
    return save_base_model(), write_dataset(tmp_path / "data")


def test_jsonl_stream_is_one_json_event_per_line(blobs, capsys):
    from segstudio.cli import main

    base, data = blobs
    code = main(["train", *_common_args(base, data), "--steps", "6", "--progress", "jsonl"])
    out = capsys.readouterr().out
    events = [json.loads(line) for line in out.splitlines()]  # every line parses
    assert code == 0
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "done" and "step" in kinds and "epoch" in kinds
    assert events[-1]["version"] == "blobs/v2" and events[-1]["promoted"] is True
    last_step = [e for e in events if e["event"] == "step"][-1]
    assert last_step["step"] == last_step["steps"] == 6
    assert active_id() == "blobs/v2"


def test_failure_exits_1_with_an_error_event(blobs, capsys):
    from segstudio.cli import main

    _, data = blobs
    before = library_snapshot()
    code = main(["train", *_common_args("missing-model", data), "--steps", "2", "--progress", "jsonl"])
    captured = capsys.readouterr()
    events = [json.loads(line) for line in captured.out.splitlines()]
    assert code == 1
    assert events[-1]["event"] == "error" and "missing-model" in events[-1]["message"]
    assert "missing-model" in captured.err
    assert_library_unchanged(before)


def test_bar_mode_reports_the_saved_version(blobs, capsys):
    from segstudio.cli import main

    base, data = blobs
    code = main(["train", *_common_args(base, data), "--epochs", "2", "--progress", "bar", "--name", "other"])
    captured = capsys.readouterr()
    assert code == 0
    assert "saved other/v1" in captured.out
    assert "epoch 2" in captured.err


def _train_parser() -> argparse.ArgumentParser:
    """The `segstudio train` parser, as the command line registers it."""
    from segstudio.cli import train

    subparsers = argparse.ArgumentParser(prog="segstudio").add_subparsers()
    train.register(subparsers)
    return subparsers.choices["train"]


def test_arguments_map_onto_the_config():
    parser = _train_parser()
    args = parser.parse_args(["--model", "m/v1", "--data", "a", "--data", "b", "--steps", "7", "--lr", "0.5",
                              "--batch", "3", "--crop", "96", "--freeze-encoder", "--no-augment",
                              "--hand-weight", "5", "--seed", "9", "--name", "n", "--force-promote"])
    config = TrainConfig.from_namespace(args)
    assert (config.base, list(config.data), config.steps, config.lr, config.batch_size, config.crop) == \
        ("m/v1", ["a", "b"], 7, 0.5, 3, 96)
    assert config.freeze_encoder and not config.augment and config.force_promote
    assert (config.hand_weight, config.seed, config.name) == (5.0, 9, "n")
    with pytest.raises(SystemExit):  # --epochs and --steps are alternatives
        parser.parse_args(["--model", "m", "--data", "a", "--epochs", "2", "--steps", "3"])


def test_defaults_come_from_the_config_and_progress_is_a_bar():
    args = _train_parser().parse_args(["--model", "m/v1", "--data", "a"])
    assert TrainConfig.from_namespace(args) == TrainConfig(base="m/v1", data=["a"])
    assert args.progress == "bar" and args.run.__module__ == "segstudio.cli.train"


def test_exit_codes_are_the_shared_ones():
    assert (ExitCode.OK, ExitCode.FAILED, ExitCode.CANCELLED) == (0, 1, 130)


# --- as a child process, the way the window runs it ------------------------------------------------
class _Child:
    def __init__(self, args: list[str], stderr_path: Path):
        env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
        self._stderr = open(stderr_path, "w")
        self.stderr_path = stderr_path
        self.proc = subprocess.Popen([sys.executable, "-m", "segstudio", "train", *args, "--progress", "jsonl"],
                                     cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=self._stderr, text=True)
        self.lines: queue.Queue = queue.Queue()
        self.events: list[dict] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def wait_for(self, kind: str, timeout: float = 120.0) -> dict:
        while True:
            line = self.lines.get(timeout=timeout)
            if line is None:
                raise AssertionError(f"child ended before a {kind!r} event:\n" + self.stderr_path.read_text())
            event = json.loads(line)
            self.events.append(event)
            if event["event"] == kind:
                return event

    def finish(self, timeout: float = 120.0) -> int:
        code = self.proc.wait(timeout=timeout)
        while (line := self.lines.get(timeout=timeout)) is not None:
            self.events.append(json.loads(line))
        self._stderr.close()
        return code


@pytest.mark.slow
def test_sigterm_cancels_cleanly_with_exit_130(blobs, tmp_path):
    base, data = blobs
    before = library_snapshot()
    child = _Child([*_common_args(base, data), "--steps", "100000"], tmp_path / "stderr.txt")
    child.wait_for("step")
    child.proc.send_signal(signal.SIGTERM)
    assert child.finish() == ExitCode.CANCELLED == 130
    assert child.events[-1]["event"] == "cancelled"
    assert_library_unchanged(before)
    assert active_id() == base


@pytest.mark.slow
def test_killed_child_leaves_library_as_it_was(blobs, tmp_path):
    base, data = blobs
    before = library_snapshot()
    child = _Child([*_common_args(base, data), "--steps", "100000"], tmp_path / "stderr.txt")
    child.wait_for("step")
    child.proc.kill()
    assert child.finish() == -signal.SIGKILL
    assert_library_unchanged(before)  # no new version, no temp file, settings untouched
    assert active_id() == base


def test_a_failed_run_names_the_image_file_once(tmp_path):
    """The error event names the user's file, not the dataset's hash-named copy."""
    data = write_dataset(tmp_path / "data", n=4, extra_label=2)  # a mask uses a class the model lacks
    base = save_base_model()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-m", "segstudio", "train", *_common_args(base, data), "--steps", "2",
                             "--progress", "jsonl"], capture_output=True, text=True, timeout=300, cwd=REPO, env=env)
    assert result.returncode == ExitCode.FAILED
    errors = [json.loads(line) for line in result.stdout.splitlines() if '"error"' in line]
    assert len(errors) == 1
    message = errors[0]["message"]
    assert "/data/blob3.tif" in message and "uses class id 2" in message
    assert "images/" not in message  # not the dataset's hash-named copy


def test_extend_classes_grows_the_model_before_training(blobs, tmp_path, capsys):
    from segstudio.cli import main
    from segstudio.models.library import ModelLibrary
    from tests.gui.training.test_growing_classes import write_three_class_dataset

    base, _ = blobs
    data = write_three_class_dataset(tmp_path / "cells")
    assert main(["train", *_common_args(base, data), "--steps", "2", "--progress", "none"]) == 1
    assert "--extend-classes" in capsys.readouterr().err  # the plain run says how to go on
    assert main(["train", *_common_args(base, data), "--steps", "2", "--progress", "none", "--extend-classes"]) == 0
    assert "Made blobs/v2 with room for mitosis (id 2)" in capsys.readouterr().err
    trained = ModelLibrary().find("blobs/v3").meta
    assert trained.parent == "blobs/v2" and trained.num_classes == 3


# --- checks made before the long work -----------------------------------------------------------------
def _fails_before_training(capsys, argv) -> str:
    from segstudio.cli import main

    code = main(argv)
    captured = capsys.readouterr()
    assert code == ExitCode.FAILED
    assert "Traceback" not in captured.err
    assert "step" not in captured.err.replace("steps", "")  # no training step ran
    errors = [line for line in captured.err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    return errors[0]


def test_a_full_disk_is_refused_before_training_starts(blobs, capsys, monkeypatch):
    import shutil as shutil_module

    from segstudio.engine.training import release

    base, data = blobs
    before = library_snapshot()
    real = shutil_module.disk_usage
    monkeypatch.setattr(release.shutil, "disk_usage", lambda p: real(p)._replace(free=2 * 2**20))
    line = _fails_before_training(capsys, ["train", *_common_args(base, data), "--steps", "2"])
    assert "2 MB free" in line and "needs about" in line and "Nothing was trained" in line
    assert_library_unchanged(before)


def test_a_models_folder_that_cannot_be_made_is_refused_before_training_starts(blobs, capsys, monkeypatch,
                                                                               tmp_path):
    from segstudio.core.paths import user_models_dir

    base, data = blobs
    model_file = user_models_dir() / "blobs" / "v1.safetensors"
    (tmp_path / "a-file").write_text("not a folder")
    monkeypatch.setenv("SEGSTUDIO_DATA_DIR", str(tmp_path / "a-file" / "data"))
    line = _fails_before_training(capsys, ["train", *_common_args(str(model_file), data), "--steps", "2"])
    assert "cannot be created" in line and "a-file" in line


def test_a_crop_too_small_for_the_bundled_model_is_refused_naming_the_smallest_that_works(tmp_path, capsys):
    # Four halvings turn a 16 px crop into one value per channel, which batch normalisation cannot learn from.
    data = write_dataset(tmp_path / "data")
    before = library_snapshot()
    line = _fails_before_training(capsys, ["train", "--model", "nuclei-unet", "--data", str(data), "--crop", "16",
                                           "--batch", "1", "--steps", "2", "--device", "cpu", "--workers", "0"])
    assert "16 px is too small for nuclei-unet" in line and "--crop 32" in line
    assert_library_unchanged(before)


def test_the_smallest_crop_named_trains_the_bundled_model(tmp_path, capsys):
    from segstudio.cli import main

    data = write_dataset(tmp_path / "data")
    code = main(["train", "--model", "nuclei-unet", "--data", str(data), "--crop", "32", "--batch", "1",
                 "--steps", "2", "--device", "cpu", "--workers", "0", "--progress", "jsonl"])
    assert code == 0, capsys.readouterr().err[-2000:]
