"""`segstudio export`: put labelled images into a dataset folder (and optionally an nnU-Net raw folder), or
write their objects in a format other tools read (``--format geojson|imagej|coco|instances|omezarr``).

Each image's mask comes from one of two places:

* ``--masks DIR``: ``DIR/<stem>_mask.png`` (what ``segstudio predict`` writes) or ``DIR/<stem>.png``; such
  masks carry no record of what was painted by hand, so the hand map is empty unless ``--hand-painted`` says
  the masks were drawn by a person;
* ``--from-autosave``: the work saved by the window for that image (mask, class table, hand map, model
  version), i.e. corrections that were never exported from the window. A whole slide is exported as the
  patches a person painted or corrected (core.slide_dataset), never whole.

With an object format, each image's objects are ``DIR/<stem>_objects.tif`` when ``segstudio predict
--objects`` wrote one, else the mask's patches with touching ones split (``--no-split`` keeps each patch
whole); the files go into the ``--to`` folder as ``<stem>.geojson``, ``<stem>_rois.zip``,
``<stem>_coco.json``, ``<stem>_objects.tif`` or ``<stem>.ome.zarr``.

Every image is handled on its own: a file that cannot be read or has no usable mask is reported with the
reason and skipped, the others are exported, and the exit status is 1 if anything failed.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from segstudio.core.text import printable

if TYPE_CHECKING:
    from segstudio.core.dataset import ExportItem
    from segstudio.core.labels import ClassTable


def register(subparsers) -> None:
    parser = subparsers.add_parser("export", help="export corrected masks into a dataset folder")
    parser.add_argument("images", nargs="+", metavar="IMAGE",
                        help="image files or folders (a folder's files named *_mask.png are skipped)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--masks", metavar="DIR",
                        help="folder with <stem>_mask.png or <stem>.png index masks")
    source.add_argument("--from-autosave", action="store_true",
                        help="take each image's mask, classes and hand map from the window's autosave")
    parser.add_argument("--to", required=True, metavar="DIR",
                        help="dataset folder, or with --format the folder for the files (created if missing)")
    parser.add_argument("--format", default="dataset",
                        choices=["dataset", "geojson", "imagej", "coco", "instances", "omezarr"],
                        help="dataset (default): a training dataset folder; geojson: QuPath; imagej: Fiji ROI "
                             "set; coco: COCO JSON; instances: instance TIFF; omezarr: OME-Zarr with labels "
                             "(napari)")
    parser.add_argument("--no-split", action="store_true",
                        help="with --format: one object per connected patch (do not split touching objects)")
    parser.add_argument("--classes", metavar="FILE",
                        help="class table JSON: a list of {id, name, color} or a file with a 'classes' list "
                             "(e.g. another dataset.json). Default: the dataset's own table, else "
                             "background + nucleus")
    parser.add_argument("--hand-painted", action="store_true",
                        help="with --masks: the masks were drawn by hand (marks every pixel as hand-painted)")
    parser.add_argument("--model-version", metavar="NAME/vN",
                        help="model version that pre-filled the masks (recorded in the dataset)")
    parser.add_argument("--nnunet", metavar="OUT_ROOT",
                        help="also write the whole dataset in nnU-Net v2 raw layout under OUT_ROOT")
    parser.add_argument("--nnunet-id", type=int, default=501, help="nnU-Net dataset id (default 501)")
    parser.add_argument("--nnunet-name", default="segstudio", help="nnU-Net dataset name (default segstudio)")
    parser.add_argument("--quiet", action="store_true", help="print errors and the summary only")
    parser.set_defaults(run=run)


def _expand(inputs: list[str], errors: list[str]) -> list[Path]:
    from segstudio.core.imageio import SUPPORTED_SUFFIXES

    suffixes = {s.lower() for s in SUPPORTED_SUFFIXES}
    files: list[Path] = []
    for raw in inputs:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.iterdir()
                           if p.is_file() and p.suffix.lower() in suffixes and not p.name.endswith("_mask.png"))
            if not found:
                errors.append(f"{path}: no images in this folder")
            files.extend(found)
        elif path.exists():
            files.append(path)
        else:
            errors.append(f"{path}: file not found")
    return files


def _read_class_file(path: str) -> ClassTable:
    from segstudio.core.dataset import DatasetError
    from segstudio.core.labels import ClassTable

    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if isinstance(data, dict):
            data = data["classes"]
        return ClassTable.from_list(data)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DatasetError(f"Cannot read classes from {path}: {exc}") from exc


def _find_mask(mask_dir: Path, image: Path) -> Path | None:
    for candidate in (mask_dir / f"{image.stem}_mask.png", mask_dir / f"{image.stem}.png"):
        # With masks and images in one folder, <stem>.png may be the image itself.
        if candidate.is_file() and candidate.resolve() != image.resolve():
            return candidate
    return None


def _items(files: list[Path], args, report, metas: dict | None = None) -> Iterator[ExportItem]:
    import numpy as np

    from segstudio.core.autosave import AutosaveStore
    from segstudio.core.dataset import ExportItem
    from segstudio.core.imageio import ImageReadError, is_whole_slide, read_image
    from segstudio.core.storage import load_mask_png

    store = AutosaveStore() if args.from_autosave else None
    mask_dir = Path(args.masks) if args.masks else None
    for path in files:
        try:
            if is_whole_slide(path):
                yield from _slide_items(path, args, report)
                continue
            image = read_image(path)
        except ImageReadError as exc:
            report(path, str(exc))
            continue
        except (OSError, ValueError, MemoryError) as exc:
            report(path, f"Cannot open {path}: {exc}")
            continue
        classes, hand, objects, model_version = None, None, None, args.model_version
        if store is not None:
            try:
                record = store.load(path)
            except (OSError, ValueError) as exc:  # a damaged autosave: this image is skipped, the others export
                report(path, str(exc))
                continue
            if record is None:
                report(path, "no autosaved work for this image (open it in segstudio, label it, then export)")
                continue
            mask, hand = record.mask, record.hand
            objects = record.objects  # objects found or edited in the window (they teach a border output)
            classes = record.classes
            extra = record.extra or {}
            model_version = model_version or extra.get("model_version")
        else:
            mask_path = _find_mask(mask_dir, path)
            if mask_path is None:
                report(path, f"no mask {path.stem}_mask.png or {path.stem}.png in {mask_dir}")
                continue
            try:
                mask = load_mask_png(mask_path)
            except (OSError, ValueError) as exc:
                report(path, f"Cannot open mask {mask_path}: {exc}")
                continue
            if mask.ndim != 2:
                report(path, f"{mask_path} is not an index mask (it has {mask.shape[2]} colour channels)")
                continue
            if args.hand_painted:
                hand = np.ones(mask.shape, dtype=bool)
        item = ExportItem(pixels=image.pixels, mask=mask, source=str(path.resolve()), hand=hand,
                          model_version=model_version, channel_names=image.meta.channel_names,
                          classes=classes, objects=objects)
        if metas is not None:
            metas[item.source] = image.meta
        yield item


def _slide_items(path: Path, args, report) -> Iterator[ExportItem]:
    """A whole slide's reviewed regions as patches (core.slide_dataset), from the labels its window saved."""
    from segstudio.core.imageio import Slide
    from segstudio.core.slide_dataset import open_autosaved_labels, reviewed_regions, slide_items

    if args.format != "dataset" or not args.from_autosave:
        report(path, "a whole slide goes into a dataset as the regions a person corrected in its window: "
                     "export it with --from-autosave (and no --format)")
        return
    with Slide(path) as slide:
        stores = open_autosaved_labels(slide)
        if stores is None:
            report(path, "no autosaved labels for this slide (open it in segstudio, correct it, then export)")
            return
        labels, hand = stores
        regions = reviewed_regions(hand)
        hand.forget_saved()  # opened for this export only: what was read to find the regions is let go
        if not regions:
            report(path, "no part of this slide was painted or corrected by hand, so there is nothing to train on")
            return
        yield from slide_items(slide, labels, hand, None, regions, model_version=args.model_version, forget=True)


def _find_objects(mask_dir: Path, image: Path) -> Path | None:
    candidate = mask_dir / f"{image.stem}_objects.tif"
    return candidate if candidate.is_file() and candidate.resolve() != image.resolve() else None


def _export_objects(args, files: list[Path], classes: ClassTable, report) -> int:
    """Write each image's objects in ``args.format`` into the ``--to`` folder; returns how many were written."""
    from segstudio.core.objects.formats import (
        ObjectFileError,
        layer_from_mask,
        output_name,
        read_objects,
        write_objects,
    )
    from segstudio.core.objects.instances import connected_objects, split_touching
    from segstudio.core.storage import SaveError

    out_dir = Path(args.to)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = 0
    metas: dict = {}
    for item in _items(files, args, report, metas):
        source = Path(item.source)
        table = item.classes or classes
        objects_file = _find_objects(Path(args.masks), source) if args.masks else None
        try:
            if objects_file is not None:
                ids = read_objects(objects_file).ids
                if ids.shape != item.mask.shape:
                    raise ObjectFileError(objects_file, f"its size {ids.shape} is not the mask's {item.mask.shape}")
            else:
                ids = connected_objects(item.mask) if args.no_split else split_touching(item.mask)
            target = out_dir / output_name(source.stem, args.format)
            write_objects(args.format, target, layer_from_mask(ids, item.mask, table), table,
                          pixels=item.pixels, pixel_size_um=metas[item.source].pixel_size_um,
                          image_name=source.name)
        except (ObjectFileError, SaveError, OSError, ValueError) as exc:
            report(source, str(exc))
            continue
        written += 1
        if not args.quiet:
            print(f"exported {source} -> {target} ({int(ids.max())} objects)")
    return written


def run(args: argparse.Namespace) -> int:
    from segstudio.core.dataset import DatasetError, export_many, load_classes
    from segstudio.core.labels import ClassTable
    from segstudio.core.nnunet import export_nnunet

    out = sys.stdout
    failures: list[str] = []

    def report(path, reason: str) -> None:
        failures.append(str(path))
        print(printable(f"error: {path}: {reason}"), file=sys.stderr)

    dataset_dir = Path(args.to)
    if args.masks and not Path(args.masks).is_dir():
        print(f"error: --masks {args.masks}: not a folder", file=sys.stderr)
        return 2
    try:
        if args.classes:
            classes = _read_class_file(args.classes)
        elif (dataset_dir / "dataset.json").is_file():
            classes = load_classes(dataset_dir)
        else:
            classes = ClassTable.default()
    except (DatasetError, FileNotFoundError) as exc:
        print(printable(f"error: {exc}"), file=sys.stderr)
        return 2

    expand_errors: list[str] = []
    files = _expand(args.images, expand_errors)
    for message in expand_errors:
        failures.append(message)
        print(printable(f"error: {message}"), file=sys.stderr)

    if args.format != "dataset":
        try:
            written = _export_objects(args, files, classes, report)
        except OSError as exc:
            print(f"error: {args.to}: {exc}", file=sys.stderr)
            return 1
        print(f"{written} exported, {len(failures)} failed -> {args.to}", file=out)
        return 1 if failures else 0

    sources = {str(p.resolve()): p for p in files}

    def on_error(item: ExportItem, exc: DatasetError) -> None:
        report(sources.get(item.source, item.source), str(exc))

    try:
        entries = export_many(dataset_dir, _items(files, args, report), classes, on_error=on_error)
    except (DatasetError, OSError) as exc:
        print(printable(f"error: {dataset_dir}: {exc}"), file=sys.stderr)
        return 1
    if not args.quiet:
        for entry in entries:
            shown = sources.get(entry["source"], entry["source"])
            print(printable(f"exported {shown} -> {entry['id']} ({entry['split']}, "
                  f"{100 * entry['hand_fraction']:.0f}% painted by hand)"), file=out)
    print(f"{len(entries)} exported, {len(failures)} failed -> {dataset_dir}", file=out)

    if args.nnunet:
        if not (dataset_dir / "dataset.json").is_file():
            print("error: nothing to write for nnU-Net: the dataset is empty", file=sys.stderr)
            return 1
        try:
            folder = export_nnunet(dataset_dir, args.nnunet, dataset_id=args.nnunet_id, name=args.nnunet_name)
        except (DatasetError, OSError) as exc:
            print(printable(f"error: nnU-Net export: {exc}"), file=sys.stderr)
            return 1
        print(f"nnU-Net raw dataset -> {folder}", file=out)
    return 1 if failures else 0
