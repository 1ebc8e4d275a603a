"""The `segstudio` command: with no sub-command it opens the window; sub-commands run the engine headless.

Sub-command modules are imported only when used, so `segstudio --help` and the GUI start fast and the
window can appear before torch has finished importing.
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence


def _add_gui_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs="*", help="image files or folders to open")
    parser.add_argument("--sample", action="store_true", help="open the bundled sample image")
    parser.add_argument("--model", help="model to select (name or file)")


# --- predict -----------------------------------------------------------------------------------
def _add_predict(sub) -> None:
    p = sub.add_parser("predict", help="predict masks for image files")
    p.add_argument("inputs", nargs="+", help="image files or folders")
    p.add_argument("--model", required=True, help="model name from `segstudio models list`, or a file")
    p.add_argument("--out", required=True, help="output folder for index-mask PNGs")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--tile", type=int, default=512, help="tile size in pixels (default 512)")
    p.add_argument("--overlap", type=float, default=0.25, help="tile overlap fraction (default 0.25)")
    p.add_argument("--batch", type=int, default=0,
                   help="tiles per forward pass (default: 4 on a GPU, 1 on the CPU)")
    p.add_argument("--confidence", action="store_true", help="also write the confidence map")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler="segstudio.engine.predict_cli:run")


# --- train -------------------------------------------------------------------------------------
def _add_train(sub) -> None:
    from segstudio.cli import train

    train.register(sub)


# --- export ------------------------------------------------------------------------------------
def _add_export(sub) -> None:
    p = sub.add_parser("export", help="export corrected masks into a dataset folder")
    p.set_defaults(handler="segstudio.engine.export_cli:run", configure="segstudio.engine.export_cli:add_arguments")


# --- models ------------------------------------------------------------------------------------
def _add_models(sub) -> None:
    p = sub.add_parser("models", help="list the model library")
    msub = p.add_subparsers(dest="models_command", required=True)
    ls = msub.add_parser("list", help="bundled and user models with their lineage")
    ls.add_argument("--json", action="store_true", help="machine-readable output")
    ls.set_defaults(handler="segstudio.models.library:cli_list")
    arch = msub.add_parser("architectures", help="network architectures that can be built")
    arch.set_defaults(handler="segstudio.models.registry:cli_list")


def _resolve(spec: str):
    import importlib

    module_name, _, attr = spec.partition(":")
    return getattr(importlib.import_module(module_name), attr)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="segstudio", description=__doc__.splitlines()[0])
    from segstudio import __version__

    parser.add_argument("--version", action="version", version=f"segstudio {__version__}")
    sub = parser.add_subparsers(dest="command")
    gui = sub.add_parser("gui", help="open the window (the default)")
    _add_gui_arguments(gui)
    for add in (_add_predict, _add_train, _add_export, _add_models):
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    known = {"gui", "predict", "train", "export", "models"}
    if not argv or (argv[0] not in known and argv[0] not in ("-h", "--help", "--version")):
        argv = ["gui", *argv]
    # Sub-commands with many options declare them in their own module (imported only when used).
    if argv[0] == "export":
        sub_action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        sub_parser = sub_action.choices[argv[0]]
        configure = sub_parser.get_default("configure")
        if configure:
            _resolve(configure)(sub_parser)
    args = parser.parse_args(argv)
    if args.command == "gui":
        from segstudio.gui.app import run_app

        return run_app(images=args.images, sample=args.sample, model=args.model)
    if hasattr(args, "run"):
        return int(args.run(args))
    handler = _resolve(args.handler)
    return int(handler(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
