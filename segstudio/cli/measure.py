"""`segstudio measure`: one row per object of each image (area, perimeter, centroid, intensities), headless.

Each image's mask is ``DIR/<stem>_mask.png`` or ``DIR/<stem>.png`` (what ``segstudio predict`` writes);
its objects are ``DIR/<stem>_objects.tif`` when ``predict --objects`` wrote one, else the mask's patches
with touching ones split. The pixel size comes from the image file (OME-TIFF, ImageJ, TIFF tags) unless
``--pixel-size`` gives it. A per-class summary (count, mean area, density per mm^2) is printed, and
written with ``--summary FILE``. Files that cannot be read are named with the reason and skipped; the exit
status is 1 when any failed.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser("measure", help="measure every object of labelled images into a CSV table")
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files or folders")
    parser.add_argument("--masks", required=True, metavar="DIR",
                        help="folder with <stem>_mask.png (and optionally <stem>_objects.tif)")
    parser.add_argument("--out", required=True, metavar="TABLE.csv", help="the CSV file to write")
    parser.add_argument("--summary", metavar="SUMMARY.csv", help="also write the per-image, per-class summary")
    parser.add_argument("--pixel-size", type=float, metavar="UM",
                        help="micrometres per pixel for every image (default: what each file says)")
    parser.add_argument("--no-split", action="store_true", help="one object per connected patch")
    parser.set_defaults(run=run)


def _objects(mask_dir: Path, image: Path, mask, no_split: bool):
    from segstudio.core.objects.formats import ObjectFileError, read_objects
    from segstudio.core.objects.instances import connected_objects, split_touching

    stored = mask_dir / f"{image.stem}_objects.tif"
    if stored.is_file():
        ids = read_objects(stored).ids
        if ids.shape != mask.shape:
            raise ObjectFileError(stored, f"its size {ids.shape} is not the mask's {mask.shape}")
        return ids
    return connected_objects(mask) if no_split else split_touching(mask)


def _measure_one(path: Path, args, classes):
    from segstudio.cli.export import _find_mask
    from segstudio.core.imageio import read_image
    from segstudio.core.objects.measure import measure_objects
    from segstudio.core.storage import load_mask_png

    mask_dir = Path(args.masks)
    image = read_image(path)
    mask_path = _find_mask(mask_dir, path)
    if mask_path is None:
        raise ValueError(f"no mask {path.stem}_mask.png or {path.stem}.png in {mask_dir}")
    mask = load_mask_png(mask_path)
    if mask.ndim != 2 or mask.shape != image.shape:
        raise ValueError(f"{mask_path.name} does not fit the image ({mask.shape} vs {image.shape})")
    ids = _objects(mask_dir, path, mask, args.no_split)
    return measure_objects(ids, mask, classes, pixels=image.pixels, channel_names=image.meta.channel_names,
                           pixel_size_um=args.pixel_size or image.meta.pixel_size_um, image=path.name)


def run(args: argparse.Namespace) -> int:
    import csv

    from segstudio.cli.export import _expand
    from segstudio.core.imageio import ImageReadError
    from segstudio.core.labels import ClassTable
    from segstudio.core.objects.formats import ObjectFileError
    from segstudio.core.objects.measure import summarise, write_csv
    from segstudio.core.storage import atomic_open

    if not Path(args.masks).is_dir():
        print(f"error: --masks {args.masks}: not a folder", file=sys.stderr)
        return 2
    failures: list[str] = []
    files = _expand(args.images, failures)
    for message in failures:
        print(f"error: {message}", file=sys.stderr)
    classes = ClassTable.default()
    tables = []
    for path in files:
        try:
            tables.append(_measure_one(path, args, classes))
        except (ImageReadError, ObjectFileError, OSError, ValueError) as exc:
            failures.append(str(path))
            print(f"error: {path}: {exc}", file=sys.stderr)
    summary = [entry for table in tables for entry in summarise(table)]
    for entry in summary:
        density = f", {entry['density_per_mm2']:g} per mm^2" if entry["density_per_mm2"] is not None else ""
        print(f"{entry['image']}: {entry['count']} {entry['class']} objects, mean area "
              f"{entry['mean_area_px']:g} px{density}")
    try:
        write_csv(args.out, tables)
        if args.summary:
            with atomic_open(args.summary, "w") as handle:
                writer = csv.DictWriter(handle, fieldnames=["image", "class", "count", "total_area_px",
                                                            "mean_area_px", "density_per_mm2"],
                                        lineterminator="\n")
                writer.writeheader()
                writer.writerows(summary)
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{sum(len(t.rows) for t in tables)} objects from {len(tables)} image(s) -> {args.out}; "
          f"{len(failures)} failed")
    return 1 if failures else 0
