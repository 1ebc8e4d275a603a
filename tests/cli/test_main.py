import argparse
import importlib
import os
import subprocess
import sys

import pytest

from segstudio.cli import SUBCOMMANDS, build_parser, main


def test_help_lists_subcommands(capsys):
    try:
        main(["--help"])
    except SystemExit as exc:
        assert exc.code == 0
    out = capsys.readouterr().out
    for name in ("predict", "train", "export", "models"):
        assert name in out


def test_bare_paths_mean_open_in_gui():
    args = build_parser().parse_args(["gui", "a.tif", "--sample"])
    assert args.images == ["a.tif"] and args.sample


def test_bare_paths_and_options_without_a_sub_command_open_the_window(monkeypatch):
    opened = {}
    monkeypatch.setattr("segstudio.gui.app.run_app", lambda **kwargs: opened.update(kwargs) or 0)
    assert main(["a.tif", "folder", "--model", "nuclei-unet"]) == 0
    assert opened == {"images": ["a.tif", "folder"], "sample": False, "model": "nuclei-unet"}
    opened.clear()
    assert main([]) == 0
    assert opened == {"images": [], "sample": False, "model": None}


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_each_sub_command_registers_its_own_parser_and_runner(name):
    module = importlib.import_module(f"segstudio.cli.{name}")
    parser = argparse.ArgumentParser(prog="segstudio")
    subparsers = parser.add_subparsers(dest="command")
    module.register(subparsers)
    assert list(subparsers.choices) == [name]
    assert subparsers.choices[name].get_default("run") is module.run


def test_building_the_parser_imports_no_heavy_library():
    code = (
        "import sys\n"
        "from segstudio.cli import build_parser\n"
        "build_parser().parse_args(['predict', 'a.png', '--model', 'm', '--out', 'o'])\n"
        "print(sorted(m for m in ('torch', 'numpy', 'cv2', 'PySide6', 'tifffile') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_python_dash_m_runs_the_cli():
    result = subprocess.run([sys.executable, "-m", "segstudio", "--version"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "segstudio" in result.stdout


def test_a_mistyped_sub_command_gets_the_usage_message_not_the_window(monkeypatch, capsys, tmp_path):
    opened = []
    monkeypatch.setattr("segstudio.gui.app.run_app", lambda **kwargs: opened.append(kwargs) or 0)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        main(["segment", "x.tif"])
    assert exc.value.code == 2 and opened == []
    err = capsys.readouterr().err
    assert "usage: segstudio" in err and "'segment'" in err
    for name in ("gui", *SUBCOMMANDS):
        assert name in err
    with pytest.raises(SystemExit):
        main(["trian", "data"])
    assert "Did you mean 'train'" in capsys.readouterr().err


def test_an_existing_file_or_folder_named_like_a_word_still_opens(monkeypatch, tmp_path):
    opened = []
    monkeypatch.setattr("segstudio.gui.app.run_app", lambda **kwargs: opened.append(kwargs["images"]) or 0)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "results").mkdir()
    (tmp_path / "slide").write_bytes(b"")
    assert main(["results"]) == 0 and main(["slide"]) == 0
    assert main(["missing.tif"]) == 0  # a file name: the window says it cannot open it
    assert opened == [["results"], ["slide"], ["missing.tif"]]


def test_python_dash_m_with_an_unknown_command_exits_2_without_a_window(tmp_path):
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    result = subprocess.run([sys.executable, "-m", "segstudio", "segment", "x.tif"], capture_output=True, text=True,
                            timeout=60, cwd=tmp_path, env=env)
    assert result.returncode == 2
    assert "'segment' is neither a command nor an existing file" in result.stderr
    assert "predict" in result.stderr and "train" in result.stderr
