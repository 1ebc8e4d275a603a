"""`segstudio train`: fine-tune a model version on dataset folders (options and run in engine.train_cli)."""
from __future__ import annotations

import argparse


def register(subparsers) -> None:
    from segstudio.engine.train_cli import add_arguments  # standard library only at import

    parser = subparsers.add_parser("train", help="fine-tune a model version on dataset folders")
    add_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from segstudio.engine.train_cli import run as train

    return train(args)
