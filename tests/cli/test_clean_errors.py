"""Damaged files and hostile names on the command line: one clean line naming the file and the reason, exit
status 1, no traceback, and no terminal escape sequence from a file name reaching the terminal."""
from __future__ import annotations

import numpy as np
import pytest
import tifffile

from segstudio.cli import main
from segstudio.core.autosave import AutosaveStore
from segstudio.core.labels import ClassTable

CLEAR_SCREEN = "\x1b[2J"


def test_a_damaged_autosave_is_named_and_the_other_images_still_export(tmp_path, capsys):
    good, damaged = tmp_path / "good.tif", tmp_path / "damaged.tif"
    for path in (good, damaged):
        tifffile.imwrite(path, np.zeros((16, 16), np.uint8))
        AutosaveStore().save(path, np.ones((16, 16), np.uint8), ClassTable.default(), None)
    AutosaveStore().data_path(damaged).write_bytes(b"PK\x03\x04 cut short")
    code = main(["export", str(good), str(damaged), "--from-autosave", "--to", str(tmp_path / "ds")])
    captured = capsys.readouterr()
    assert code == 1 and "Traceback" not in captured.err
    assert f"error: {damaged}: Cannot read autosave" in captured.err
    assert "1 exported, 1 failed" in captured.out


def test_a_file_name_with_escape_sequences_is_printed_without_them(tmp_path, capsys):
    hostile = tmp_path / f"slide{CLEAR_SCREEN}\x1b]0;owned\x07.tif"
    tifffile.imwrite(hostile, np.zeros((16, 16), np.uint8))
    (tmp_path / "masks").mkdir()
    code = main(["export", str(hostile), "--masks", str(tmp_path / "masks"), "--to", str(tmp_path / "ds")])
    captured = capsys.readouterr()
    assert code == 1
    assert "no mask" in captured.err and "slide" in captured.err
    assert "\x1b" not in captured.err + captured.out and "\x07" not in captured.err


def test_a_missing_image_named_with_escapes_is_reported_without_them(tmp_path, capsys):
    code = main(["predict", str(tmp_path / f"gone{CLEAR_SCREEN}.png"), "--model", "nuclei-unet",
                 "--out", str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err
    assert code != 0 and "no such file" in err and "gone" in err and "\x1b" not in err


@pytest.mark.parametrize("make_error", ["checkpoint", "dataset", "metadata"])
def test_a_damaged_file_error_that_escapes_a_command_is_one_line_with_exit_1(tmp_path, capsys, monkeypatch,
                                                                               make_error):
    from segstudio.cli import models as models_command
    from segstudio.core.dataset import DatasetError
    from segstudio.models.checkpoint import CheckpointError
    from segstudio.models.metadata import MetadataError

    bad = tmp_path / f"bad{CLEAR_SCREEN}.safetensors"
    error = {"checkpoint": CheckpointError(bad, "not a safetensors file\n(invalid header)"),
             "dataset": DatasetError(f"{bad}: 'entries' must be a list"),
             "metadata": MetadataError(f"{bad}: version must be a whole number")}[make_error]

    def damaged(*args, **kwargs):
        raise error

    monkeypatch.setattr(models_command, "run", damaged)
    code = main(["models", "list"])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    (line,) = err.splitlines()
    assert line.startswith(f"segstudio: {tmp_path}/bad") and "\x1b" not in line
    if make_error == "checkpoint":
        assert line.endswith(".safetensors: not a safetensors file (invalid header)")
