import subprocess
import sys

from segstudio.cli import build_parser, main


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


def test_python_dash_m_runs_the_cli():
    result = subprocess.run([sys.executable, "-m", "segstudio", "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "segstudio" in result.stdout
