"""`segstudio models list | architectures | new`: what the model library holds, and new models for it."""
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
    _register_new(commands)
    export = commands.add_parser("export", help="write a model as files another lab can import")
    export.add_argument("model", help="id, name (its newest version) or file")
    export.add_argument("folder", help="where the .safetensors + .json pair goes")
    export.add_argument("--onnx", action="store_true", help="also write an ONNX file (needs the onnx package)")
    imported = commands.add_parser("import", help="add a model file (.safetensors, or .pt/.pth with its .json)")
    imported.add_argument("file")
    imported.add_argument("--name", help="the name in your library (default: the file's own)")
    parser.set_defaults(run=run)


def _register_new(commands) -> None:
    from segstudio.models.catalogue import arch_names  # torch- and numpy-free: --help stays instant

    new = commands.add_parser("new", help="make a new model (version 1 of a new name) in your library",
                              description="Make a new model: a network, its input, its classes, and where its "
                                          "weights start. It is saved as version 1 in your model library.")
    new.add_argument("name", help="the new model's name (letters, digits, '.', '_', '-')")
    new.add_argument("--arch", required=True, choices=arch_names(), help="the network")
    new.add_argument("--classes", required=True, help="comma-separated class names, e.g. background,nucleus")
    new.add_argument("--input", default="grey", help="what the network reads: grey | rgb | he | channels:0,2 "
                                                      "(default grey; he = hematoxylin of H&E slides)")
    new.add_argument("--channels", type=int, help="network input channels (default: what --input implies)")
    new.add_argument("--stain-vectors", metavar="FILE|VECTORS",
                     help="with --input he: your lab's stain vectors, in a file or as \"r,g,b;r,g,b;r,g,b\" "
                          "(hematoxylin; eosin; residual optical densities, 0 to 1; default: Ruifrok & Johnston's)")
    start = new.add_mutually_exclusive_group()
    start.add_argument("--from", dest="source", metavar="MODEL",
                       help="keep the weights of this model (same network) where shapes allow")
    start.add_argument("--imagenet", action="store_true",
                       help="start the encoder from ImageNet weights found on this computer (published size)")


def run(args: argparse.Namespace) -> int:
    if args.models_command == "architectures":
        return list_architectures()
    if args.models_command == "new":
        return new_model(args)
    if args.models_command in ("export", "import"):
        return move_model(args)
    return list_models(json_output=args.json)


def new_model(args: argparse.Namespace) -> int:
    """Build and save the model; print what was kept when it started from another."""
    from segstudio.core.model_fit import read_stain_vectors
    from segstudio.core.text import printable
    from segstudio.engine.new_model import NewModelError, NewModelSpec, classes_from_names, create_model
    from segstudio.models.checkpoint import CheckpointError

    start = "model" if args.source else ("imagenet" if args.imagenet else "scratch")
    try:
        vectors = None if args.stain_vectors is None else read_stain_vectors(args.stain_vectors)
        spec = NewModelSpec(name=args.name, arch=args.arch, classes=classes_from_names(args.classes),
                            input=args.input, channels=args.channels, start=start, source=args.source,
                            stain_vectors=vectors)
        result = create_model(spec)
    except (NewModelError, CheckpointError, ValueError, OSError) as err:
        print(f"error: {printable(str(err))}", file=sys.stderr)
        return 2
    meta = result.meta
    names = ", ".join(c["name"] for c in meta.classes)
    print(printable(f"Made {meta.id} ({meta.arch}, {meta.in_channels} input channel(s), classes: {names}) "
                    f"in {result.path}"))
    for line in result.notes:
        print(printable(line))
    return 0


def list_models(*, json_output: bool = False) -> int:
    """Bundled and user models with architecture, classes and lineage."""
    from segstudio.core.model_fit import describe_input
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
            "metrics": meta.metrics, "input": describe_input(meta.input, meta.in_channels),
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


def move_model(args: argparse.Namespace) -> int:
    """`models export` and `models import`: files out of and into the library."""
    from segstudio.core.text import printable
    from segstudio.engine.model_files import export_model, import_model

    try:
        if args.models_command == "export":
            for path in export_model(args.model, args.folder, onnx=args.onnx):
                print(printable(f"wrote {path}"))
        else:
            path, meta = import_model(args.file, name=args.name)
            print(printable(f"Imported {meta.id} ({meta.arch}) into {path}"))
    except (ValueError, OSError) as err:  # ModelFileError, CheckpointError and unknown models are ValueErrors
        print(f"error: {printable(str(err))}", file=sys.stderr)
        return 2
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
