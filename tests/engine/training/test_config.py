"""TrainConfig: every default once, and the `segstudio train` options as an exact round trip."""
from __future__ import annotations

import argparse
import ast
import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from segstudio.engine.training.config import TrainConfig, add_arguments, default
from segstudio.engine.training.errors import TrainingError

PACKAGE = Path(__file__).resolve().parents[3] / "segstudio"

#: A value other than the default for every field that has a `segstudio train` option.
CHANGED = dict(base="blobs/v3", data=["/data/a", "/data/b c"], epochs=7, lr=1.25e-5, batch_size=3, crop=96,
               freeze_encoder=True, augment=False, augment_strength=0.5, hand_weight=5.5, amp=False,
               device="cuda:1", seed=42, num_workers=2, name="lab-2", force_promote=True,
               in_memory_max_pixels=0, chunk_dir="/scratch/chunks", boundary_weight=0.5)
#: Fields that only Python callers (tests, benchmarks) set; the command line has no option for them.
PYTHON_ONLY = {"dice_weight", "weight_decay", "progress_interval_s", "val_whole_max_pixels"}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser


def _round_trip(config: TrainConfig) -> TrainConfig:
    return TrainConfig.from_namespace(_parser().parse_args(config.to_argv()))


def test_defaults_survive_the_command_line():
    config = TrainConfig(base="blobs/v1", data=["/data"])
    assert config.to_argv() == ["--model", "blobs/v1", "--data", "/data"]  # defaults are left to the child
    assert _round_trip(config) == config


def test_every_option_survives_the_command_line():
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    assert set(CHANGED) | {"steps"} | PYTHON_ONLY == fields  # a new field must be added to one of them
    config = TrainConfig(**CHANGED)
    for name, value in CHANGED.items():
        if name not in ("base", "data"):
            assert value != default(name), name
    assert _round_trip(config) == config
    by_steps = dataclasses.replace(config, epochs=default("epochs"), steps=123)
    assert _round_trip(by_steps) == by_steps


@pytest.mark.parametrize("name", sorted(PYTHON_ONLY))
def test_settings_without_an_option_are_refused_rather_than_lost(name):
    config = TrainConfig(base="m", data=["/d"], **{name: default(name) * 2})
    with pytest.raises(ValueError, match=name):
        config.to_argv()


def test_epochs_and_steps_are_alternatives():
    with pytest.raises(ValueError, match="alternatives"):
        TrainConfig(base="m", data=["/d"], epochs=3, steps=5).to_argv()
    with pytest.raises(SystemExit):
        _parser().parse_args(["--model", "m", "--data", "a", "--epochs", "2", "--steps", "3"])


def test_help_shows_each_default_from_the_config():
    text = _parser().format_help()
    assert "(default 20)" in text and "(default 3e-4)" in text and "(default 256)" in text
    assert "default 3)" in text  # hand weight


def test_a_single_folder_may_be_given_as_a_path():
    config = TrainConfig(base="m", data=Path("/d"))
    assert config.normalised().data == [Path("/d")]
    assert config.to_argv() == ["--model", "m", "--data", "/d"]


@pytest.mark.parametrize("changes, message", [
    ({"epochs": 0}, "epochs"), ({"steps": 0}, "steps"), ({"batch_size": 0}, "batch size"),
    ({"crop": 8}, "crop"), ({"lr": 0.0}, "learning rate"), ({"name": "../x"}, "Invalid model name")])
def test_values_training_cannot_start_with_are_refused(changes, message):
    with pytest.raises(TrainingError, match=message):
        TrainConfig(base="m", data=["/d"], **changes).check()


def test_config_and_events_import_without_torch():
    code = ("import sys; import segstudio.engine.training.config, segstudio.engine.training.events; "
            "import segstudio.cli.train; assert 'torch' not in sys.modules, 'torch imported'")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            cwd=PACKAGE.parent, check=False)
    assert result.returncode == 0, result.stderr


def _numbers_in(path: Path) -> set:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {node.value for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and type(node.value) in (int, float)}


@pytest.mark.parametrize("module", ["cli/train.py", "gui/training/dialog.py", "gui/training/controller.py"])
def test_training_defaults_are_written_only_in_the_config(module):
    """The command line and the window take the training defaults from TrainConfig, none of their own."""
    shown = {default(name) for name in ("epochs", "lr", "batch_size", "crop", "hand_weight")}
    assert shown == {20, 3e-4, 8, 256, 3.0}
    assert not _numbers_in(PACKAGE / module) & shown
