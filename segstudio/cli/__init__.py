"""The `segstudio` command: with no sub-command it opens the window; sub-commands run the engine headless.

Each sub-command lives in its own module here (`SUBCOMMANDS`), imported by name when the parser is built.
Those modules import only the standard library at module level and keep torch, OpenCV and the engine
inside their `run()`, so `segstudio --help` and the GUI start fast and the window can appear before
torch has finished importing.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

#: Sub-command modules of this package, in the order `--help` lists them after `gui`. Each exposes
#: `register(subparsers)` (adds its parser and `set_defaults(run=run)`) and `run(args) -> int`.
SUBCOMMANDS = ("predict", "train", "export", "measure", "models")


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


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0] not in ("gui", *SUBCOMMANDS) and argv[0] not in ("-h", "--help", "--version")):
        argv = ["gui", *argv]
    args = build_parser().parse_args(argv)
    if args.command == "gui":
        # The one import of the window from the command line (allowed by the import contracts).
        from segstudio.gui.app import run_app

        return run_app(images=args.images, sample=args.sample, model=args.model)
    return int(args.run(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
