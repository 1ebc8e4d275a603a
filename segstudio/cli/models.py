"""`segstudio models list` and `segstudio models architectures`: what the model library holds."""
from __future__ import annotations

import argparse
import json
import sys


def register(subparsers) -> None:
    parser = subparsers.add_parser("models", help="list the model library")
    commands = parser.add_subparsers(dest="models_command", required=True)
    listing = commands.add_parser("list", help="bundled and user models with their lineage")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    commands.add_parser("architectures", help="network architectures that can be built")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.models_command == "architectures":
        return list_architectures()
    return list_models(json_output=args.json)


def list_models(*, json_output: bool = False) -> int:
    """Bundled and user models with architecture, classes and lineage."""
    from segstudio.core.text import printable
    from segstudio.models.library import ModelLibrary, lineage_chain

    library = ModelLibrary()
    entries = library.entries()
    by_id = {e.id: e for e in entries}
    active = library.active_id()
    rows = []
    for entry in entries:
        meta = entry.meta
        rows.append({
            "id": entry.id, "name": meta.name, "version": meta.version, "arch": meta.arch,
            "classes": _class_names(meta), "in_channels": meta.in_channels, "created": meta.created,
            "parent": meta.parent, "lineage": lineage_chain(entry, by_id), "bundled": entry.bundled,
            "active": entry.id == active, "path": str(entry.path), "description": meta.description,
            "metrics": meta.metrics,
        })
    for problem in library.problems:
        print(f"warning: {problem}", file=sys.stderr)  # a ModelProblem is printable() already
    if json_output:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print(f"No models found (bundled: {library.bundled_dir}; yours: {library.user_dir})")
        return 0
    id_w = max(len(r["id"]) for r in rows)
    arch_w = max(len(r["arch"]) for r in rows)
    for r in rows:
        mark = "*" if r["active"] else " "
        source = "bundled" if r["bundled"] else "user"
        lineage = " <- ".join(r["lineage"])
        line = (f"{mark} {r['id']:<{id_w}}  {r['arch']:<{arch_w}}  {source:<7}  {r['created']}  "
                f"classes: {', '.join(r['classes']) or '-'}  lineage: {lineage}")
        print(printable(line))  # names from files may carry terminal escape sequences
    print("* active model")
    return 0


def list_architectures() -> int:
    """One line per buildable network."""
    from segstudio.models.registry import describe_model
    from segstudio.models.registry import list_models as architectures

    names = architectures()
    width = max(len(n) for n in names)
    for name in names:
        print(f"{name:<{width}}  {describe_model(name)}")
    return 0


def _class_names(meta) -> list[str]:
    return [str(c.get("name", c.get("id", "?"))) for c in meta.classes]
