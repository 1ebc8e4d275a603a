"""The `segstudio` command: with no sub-command it opens the window; sub-commands run the engine headless.

Each sub-command lives in its own module here (`SUBCOMMANDS`), imported by name when the parser is built.
Those modules import only the standard library at module level and keep torch, OpenCV and the engine
inside their `run()`, so `segstudio --help` and the GUI start fast and the window can appear before
torch has finished importing.
"""
from __future__ import annotations

import argparse
import difflib
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path

#: Sub-command modules of this package, in the order `--help` lists them after `gui`. Each exposes
#: `register(subparsers)` (adds its parser and `set_defaults(run=run)`) and `run(args) -> int`.
SUBCOMMANDS = ("predict", "train", "export", "measure", "models", "info")


def _add_gui_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs="*", help="image files or folders to open")
    parser.add_argument("--sample", action="store_true", help="open the bundled sample image")
    parser.add_argument("--model", help="model to select (name or file)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="segstudio", description=__doc__.splitlines()[0])
    from segstudio import __version__

    parser.add_argument("--version", action="version", version=f"segstudio {__version__}")
    subparsers = parser.add_subparsers(dest="command")
    gui = subparsers.add_parser("gui", help="open the window (the default)")
    _add_gui_arguments(gui)
    for name in SUBCOMMANDS:
        importlib.import_module(f"{__name__}.{name}").register(subparsers)
    return parser


def looks_like_a_mistyped_command(word: str) -> bool:
    """True for a bare word in the sub-command's place that names no file: `segstudio info x.tif`.

    Such a word would otherwise open the window with "info" as an image. A word with a file suffix or a
    folder separator is taken as a path even when missing (the window then says which file it could not
    open), and an existing file or folder is always opened, whatever its name.
    """
    if word.startswith("-") or Path(word).exists():
        return False
    return not Path(word).suffix and "/" not in word and "\\" not in word


def _refuse_unknown_command(parser: argparse.ArgumentParser, word: str) -> None:
    commands = ("gui", *SUBCOMMANDS)
    close = difflib.get_close_matches(word, commands, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    # parser.error prints the usage line and exits with status 2, as for any other wrong argument.
    parser.error(f"'{word}' is neither a command nor an existing file. Commands: {', '.join(commands)}.{hint}")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not argv or (argv[0] not in ("gui", *SUBCOMMANDS) and argv[0] not in ("-h", "--help", "--version")):
        if argv and looks_like_a_mistyped_command(argv[0]):
            _refuse_unknown_command(parser, argv[0])
        argv = ["gui", *argv]
    args = parser.parse_args(argv)
    if args.command == "gui":
        # The one import of the window from the command line (allowed by the import contracts).
        from segstudio.gui.app import run_app

        return run_app(images=args.images, sample=args.sample, model=args.model)
    try:
        return int(args.run(args) or 0)
    except (ValueError, OSError) as err:
        if not type(err).__module__.startswith("segstudio."):
            raise  # not one of ours: a defect, whose traceback is the useful report
        print(f"segstudio: {_file_and_reason(err)}", file=sys.stderr)
        return 1


def _file_and_reason(err: Exception) -> str:
    """One line for a damaged file or setting that a sub-command did not catch: `<file>: <reason>`."""
    from segstudio.core.text import printable

    path, reason = getattr(err, "path", None), getattr(err, "reason", None)
    text = f"{path}: {reason}" if path is not None and reason else str(err)
    return printable(" ".join(text.split()))  # one line, whatever the reason held


if __name__ == "__main__":
    raise SystemExit(main())
