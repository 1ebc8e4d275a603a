"""`segstudio predict`: index masks for image files and folders, headless.

A file that cannot be read is reported with the reason and skipped; the rest are still predicted, and
the exit status is 1 when anything failed so scripts notice.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from segstudio.core.text import printable
from segstudio.core.words import count

if TYPE_CHECKING:
    import numpy as np

EXIT_OK, EXIT_SOME_FAILED, EXIT_UNUSABLE = 0, 1, 2


def register(subparsers) -> None:
    parser = subparsers.add_parser("predict", help="predict masks for image files")
    parser.add_argument("inputs", nargs="+", help="image files, whole slides or folders")
    parser.add_argument("--model", required=True, help="model name from `segstudio models list`, or a file")
    parser.add_argument("--out", required=True,
                        help="output folder for index-mask PNGs; for one whole slide, a labels .zarr folder, "
                             "an OME-Zarr (.ome.zarr, for napari) or a GeoJSON (.geojson, for QuPath)")
    parser.add_argument("--everywhere", action="store_true",
                        help="whole slides: predict the glass too, not only the tissue")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    parser.add_argument("--tile", type=int, default=512, help="tile size in pixels (default 512)")
    parser.add_argument("--overlap", type=float, default=0.25, help="tile overlap fraction (default 0.25)")
    parser.add_argument("--batch", type=int, default=0,
                        help="tiles per forward pass (default: 4 on a GPU, 1 on the CPU)")
    parser.add_argument("--confidence", action="store_true", help="also write the confidence map")
    parser.add_argument("--objects", action="store_true",
                        help="also write <name>_objects.tif: one id per object (uint16, or uint32 past 65,535 "
                             "objects), touching objects split")
    parser.add_argument("--input", metavar="WHAT",
                        help="what each image feeds the model, instead of the choice the window would make: "
                             "grey | rgb | he | channels:0,2 (he: the hematoxylin stain of H&E slides, separated "
                             "from the colours; channels numbered from 0)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Under torchrun each rank takes every WORLD_SIZE-th slide (and image) on its own device; a rerun gives
    a rank the same ones, so the done-marks of a killed rank's slide let it finish cleanly."""
    from segstudio.engine.training.distributed import DistContext

    ctx = DistContext.from_env()
    if not ctx.enabled:
        return _run(args, ctx)
    from segstudio.engine.devices import pick_device

    try:
        args.device = str(ctx.setup(pick_device(args.device)))
    except (ValueError, RuntimeError) as error:
        print(f"segstudio predict: rank {ctx.rank}: {error}", file=sys.stderr)
        return EXIT_UNUSABLE
    try:
        return _run(args, ctx)
    finally:
        ctx.barrier()
        ctx.teardown()


def _run(args: argparse.Namespace, ctx) -> int:

    from segstudio.core.imageio import SUPPORTED_SUFFIXES
    from segstudio.engine.predict import Predictor, PredictSettings
    from segstudio.models.library import ModelLibrary

    err: TextIO = sys.stderr
    settings = PredictSettings(tile=args.tile, overlap=args.overlap, batch=args.batch, device=args.device)
    try:
        settings.validate()
        model, meta = ModelLibrary().load(args.model, device="cpu")
        predictor = Predictor(model, meta, device=args.device)
        settings.model_input = _chosen_input(args.input, meta)
    except (ValueError, OSError) as error:  # unknown model, unreadable checkpoint, bad device or setting
        print(printable(f"segstudio predict: {error}"), file=err)
        return EXIT_UNUSABLE

    files, missing = expand_inputs(args.inputs, SUPPORTED_SUFFIXES)
    slides, files = _split_slides(files)
    single = len(slides) == 1
    slides, files = slides[ctx.rank::ctx.world_size], files[ctx.rank::ctx.world_size]
    out_dir = Path(args.out)
    slides_status = EXIT_OK
    if slides:
        slides_status = _run_slides(args, predictor, meta, settings, slides, [] if files else missing, out_dir,
                                    err, single)
        if not files:
            return slides_status
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        print(printable(f"segstudio predict: cannot create output folder {out_dir}: {error}"), file=err)
        return EXIT_UNUSABLE
    for path in missing:
        print(printable(f"error: {path}: no such file or folder"), file=err)

    failures = _predict_images(args, predictor, meta, settings, files, missing, out_dir, err)
    if failures is None:
        return EXIT_UNUSABLE
    return EXIT_SOME_FAILED if failures or slides_status else EXIT_OK


def _predict_images(args, predictor, meta, settings, files: list[Path], missing: list[Path], out_dir: Path,
                    err: TextIO) -> int | None:
    """Ordinary images, one after another, into mask PNGs; the number that failed (None: stop, the model
    itself gives unusable answers)."""
    from segstudio.core.imageio import ImageReadError, read_image
    from segstudio.engine.predict.predictor import UnusableModelOutput

    total = len(files)
    model_id = getattr(meta, "id", args.model)
    if not args.quiet:
        print(f"Predicting {count(total, 'image')} with {model_id} on {predictor.device_label}", file=err)
    bar = ProgressBar(err, total, enabled=not args.quiet)
    stems = OutputNames()
    failures = len(missing)
    for index, path in enumerate(files, start=1):
        bar.start_image(index, printable(path.name))
        try:
            image = read_image(path)
            pixels, fed = _fed(image, meta, settings, bar, path)
            result = predictor.predict(pixels, fed, progress=bar.update_tiles)
        except ImageReadError as error:
            bar.report(printable(f"error: {error}"))
            failures += 1
            continue
        except UnusableModelOutput as error:  # every image would fail the same way: stop at the first
            bar.report(printable(f"segstudio predict: {error}"))
            return None
        except (ValueError, RuntimeError, MemoryError) as error:
            bar.report(printable(f"error: {path}: prediction failed: {error}"))
            failures += 1
            continue
        stem = stems.claim(path)
        mask_path = out_dir / f"{stem}_mask.png"
        try:
            _write_outputs(args, out_dir, stem, result, meta, bar, path)
        except (OSError, ValueError) as error:
            bar.report(printable(f"error: {path}: cannot write {mask_path}: {error}"))
            failures += 1
            continue
        for note in result.notes:
            bar.report(printable(f"note: {path.name}: {note}"))
        bar.finish_image(printable(f"{path.name} -> {mask_path.name} ({result.tiles} tiles)"))

    done = total - (failures - len(missing))
    requested = total + len(missing)
    print(printable(f"{done} of {count(requested, 'image')} predicted, {failures} failed; masks in {out_dir}"),
          file=err)
    return failures


_FIX_HINTS = {"Use the H&E path": "add --input he",
              "Pick a channel": "choose one with --input channels:N, numbered from 0",
              "Pick another channel": "choose one with --input channels:N, numbered from 0",
              "Pick channels": "choose them with --input channels:A,B, numbered from 0"}


def _chosen_input(text: str | None, meta) -> dict | None:
    """--input as the input definition every image is fed through (None: each image's default)."""
    from segstudio.core.model_fit import input_definition

    if text is None:
        return None
    definition, channels = input_definition(text)
    if channels != int(meta.in_channels):
        raise ValueError(f"--input {text} gives the model {count(channels, 'channel')}, but {meta.id} reads "
                         f"{meta.in_channels}")
    return definition


def _fed(image, meta, settings, bar, path: Path):
    """(pixels, settings) of one image as the Model panel would feed it by default, its warnings printed with
    the option that fixes each; as they are when --input chose for every image."""
    import dataclasses

    from segstudio.core.model_fit import default_model_input

    if settings.model_input is not None:
        return image.pixels, settings
    pixels, definition, advice = default_model_input(image.pixels, image.meta.channel_names, meta)
    for item in advice:
        hint = _FIX_HINTS.get(item.fix, "")
        bar.report(printable(f"warning: {path.name}: {item.text}" + (f" ({hint})" if hint else "")))
    return pixels, dataclasses.replace(settings, model_input=definition)


def _write_outputs(args, out_dir: Path, stem: str, result, meta, bar, path: Path) -> None:
    import numpy as np

    _write_png(out_dir / f"{stem}_mask.png", result.labels)
    if args.confidence:
        confidence = np.rint(result.confidence.astype(np.float32) * 255.0).astype(np.uint8)
        _write_png(out_dir / f"{stem}_confidence.png", confidence)
    if args.objects:
        found = _write_objects(out_dir / f"{stem}_objects.tif", result.labels, meta, result.boundary)
        bar.report(f"{path.name}: {count(found, 'object')}")


def _split_slides(files: list[Path]) -> tuple[list[Path], list[Path]]:
    """(whole slides, ordinary images); a file whose header cannot be read goes with the images, whose
    reader names the reason."""
    from segstudio.core.imageio import ImageReadError, is_whole_slide

    slides, images = [], []
    for path in files:
        try:
            (slides if is_whole_slide(path) else images).append(path)
        except (ImageReadError, OSError):
            images.append(path)
    return slides, images


def _run_slides(args, predictor, meta, settings, slides, missing, out_dir: Path, err: TextIO,
                single: bool) -> int:
    """Whole slides into chunked label stores (cli/predict_slides.py); ordinary images are not mixed in."""
    from segstudio.cli.predict_slides import export_labels, export_target, output_folder, predict_one_slide
    from segstudio.core.imageio import ImageReadError
    from segstudio.engine.predict import PredictionCancelled

    for path in missing:
        print(f"error: {path}: no such file or folder", file=err)
    failures = len(missing)
    if not args.quiet:
        print(f"Predicting {count(len(slides), 'whole slide')} with {getattr(meta, 'id', args.model)} on "
              f"{predictor.device_label}", file=err)
    export = export_target(out_dir, single)
    for path in slides:
        _warn_colour_slide(path, meta, settings, err)
        folder = export[0] if export else output_folder(path, out_dir, single=single)
        try:
            line = predict_one_slide(predictor, meta, args.model, path, folder, settings,
                                     tissue_only=not args.everywhere, quiet=args.quiet, err=err)
            if export:
                line += "\n" + export_labels(path, folder, export[1], meta)
        except KeyboardInterrupt:
            print(f"stopped: {path.name}: finished blocks are saved in {folder}; run the same command to "
                  "continue", file=err)
            return EXIT_SOME_FAILED
        except (ImageReadError, PredictionCancelled) as error:
            print(f"error: {error}", file=err)
            failures += 1
            continue
        except (ValueError, RuntimeError, MemoryError, OSError) as error:
            print(f"error: {path}: prediction failed: {error}", file=err)
            failures += 1
            continue
        print(line, file=err)
    return EXIT_SOME_FAILED if failures else EXIT_OK


def _warn_colour_slide(path: Path, meta, settings, err: TextIO) -> None:
    """A colour slide averaged to grey for a one-channel model is said, with the option that feeds H&E."""
    from segstudio.core.imageio import ImageReadError, Slide

    if settings.model_input is not None or int(meta.in_channels) != 1 or (meta.input or {}).get("kind") in (
            "he", "channels"):
        return
    try:
        with Slide(path) as slide:
            colour = slide.info.channels >= 3
    except (ImageReadError, OSError, ValueError):
        return  # the prediction reports the file in its own words
    if colour:
        print(printable(f"warning: {path.name}: a colour slide, and {meta.id} reads one channel: its colours are "
                        "averaged to grey (for a stained brightfield slide, add --input he)"), file=err)


def expand_inputs(inputs: Iterable[str | os.PathLike], suffixes: Sequence[str]) -> tuple[list[Path], list[Path]]:
    """Files named directly, plus the supported images directly inside named folders (sorted by name).

    Returns (files, missing). A file named directly is kept whatever its suffix, so that a wrong file
    gets a reason from the image reader rather than being silently ignored.
    """
    wanted = {s.lower() for s in suffixes}
    files: list[Path] = []
    missing: list[Path] = []
    seen: set[Path] = set()
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in wanted)
        elif path.exists():
            found = [path]
        else:
            missing.append(path)
            continue
        for file in found:
            key = file.resolve()
            if key not in seen:
                seen.add(key)
                files.append(file)
    return files, missing


class OutputNames:
    """Output stems that do not collide: a.png and a.tif (or two folders' a.png) get distinct masks."""

    def __init__(self):
        self._used: set[str] = set()

    def claim(self, path: Path) -> str:
        candidate = path.stem
        if candidate.lower() in self._used and path.suffix:
            candidate = path.name
        number = 2
        while candidate.lower() in self._used:
            candidate = f"{path.stem}-{number}"
            number += 1
        self._used.add(candidate.lower())
        return candidate


class ProgressBar:
    """Text progress on a stream: tiles of the current image and images done.

    On a terminal the line redraws in place; in a log (not a terminal) each image gets one line when it
    finishes, so logs are not filled with carriage returns.
    """

    def __init__(self, stream: TextIO, total_images: int, *, enabled: bool = True,
                 interactive: bool | None = None, width: int = 24):
        self.stream = stream
        self.total_images = total_images
        self.enabled = enabled
        self.interactive = stream.isatty() if interactive is None else interactive
        self.width = width
        self._index = 0
        self._name = ""
        self._drawn = 0
        self._started = 0.0

    def start_image(self, index: int, name: str) -> None:
        self._index, self._name = index, name
        self._started = time.monotonic()
        self.update_tiles(0, 0)

    def update_tiles(self, done: int, total: int) -> None:
        if not (self.enabled and self.interactive):
            return
        filled = self.width * done // total if total else 0
        bar = "#" * filled + "-" * (self.width - filled)
        tiles = f"{done}/{total} tiles" if total else "reading"
        self._draw(f"[{self._index}/{self.total_images}] {self._name} [{bar}] {tiles}")

    def report(self, line: str) -> None:
        """A message that must stay visible (errors, notes), shown even when the bar is off."""
        self._clear()
        print(line, file=self.stream)

    def finish_image(self, summary: str) -> None:
        if not self.enabled:
            return
        self._clear()
        seconds = time.monotonic() - self._started
        print(f"[{self._index}/{self.total_images}] {summary} in {seconds:.1f} s", file=self.stream)

    def _draw(self, text: str) -> None:
        padding = " " * max(0, self._drawn - len(text))
        self.stream.write("\r" + text + padding)
        self.stream.flush()
        self._drawn = len(text)

    def _clear(self) -> None:
        if self._drawn:
            self.stream.write("\r" + " " * self._drawn + "\r")
            self._drawn = 0


def _write_objects(path: Path, labels: np.ndarray, meta, boundary: np.ndarray | None = None) -> int:
    """The instance TIFF beside a class mask, touching objects split along the model's boundary map when it
    has one; returns how many objects it holds."""
    from segstudio.core.labels import ClassTable
    from segstudio.core.objects.formats import layer_from_mask, write_objects
    from segstudio.core.objects.instances import find_instances

    ids = find_instances(labels, boundary)
    try:
        classes = ClassTable.from_list(meta.classes)
    except (ValueError, TypeError, KeyError):  # a model without a usable class list: name them by id
        classes = ClassTable.default()
    write_objects("instances", path, layer_from_mask(ids, labels, classes), classes)
    return int(ids.max())


def _write_png(path: Path, pixels: np.ndarray) -> None:
    """Index masks and confidence maps appear complete or not at all."""
    from segstudio.core.storage import save_mask_png

    save_mask_png(path, pixels)


