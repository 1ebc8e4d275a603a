"""`segstudio predict SLIDE --out labels.zarr`: whole slides into chunked label stores, resumable.

Each slide's labels go to a zarr folder (the same chunked layout the slide window keeps), written block
by block with a done-mark per block, so a run that was stopped (Ctrl+C, a killed job) continues where it
stopped when started again with the same model and settings. Glass is found on a low level and skipped.

For one slide, ``--out labels.ome.zarr`` writes an OME-Zarr label pyramid (napari) and ``--out
objects.geojson`` the objects for QuPath (core.objects.formats.slide_labels); the resumable store is kept
beside it as <name>.labels.zarr, so a stopped run continues and the export is written at its end.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TextIO

from segstudio.core.words import count, duration, time_left


def output_folder(slide_path: Path, out: Path, single: bool) -> Path:
    """`--out` itself when it names a .zarr folder for one slide, else <out>/<slide name>.labels.zarr."""
    if single and out.suffix.lower() == ".zarr":
        return out
    name = slide_path.name
    for suffix in (".ome.tiff", ".ome.tif"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    else:
        name = slide_path.stem
    return out / f"{name}.labels.zarr"


EXPORTS = (".ome.zarr", ".geojson")


def export_target(out: Path, single: bool) -> tuple[Path, Path] | None:
    """(the label store to predict into, the file to export) when ``--out`` names an export for one slide."""
    name = out.name
    for suffix in EXPORTS:
        if single and name.lower().endswith(suffix) and len(name) > len(suffix):
            return out.with_name(name[: -len(suffix)] + ".labels.zarr"), out
    return None


def export_labels(slide_path: Path, folder: Path, target: Path, meta) -> str:
    """Write the labels predicted into ``folder`` as ``target`` (OME-Zarr or GeoJSON), chunk by chunk."""
    from segstudio.core.imageio import Slide
    from segstudio.core.label_store import LabelStore
    from segstudio.core.objects.formats import slide_labels

    names, colours = {}, {}
    for entry in getattr(meta, "classes", None) or []:
        if int(entry.get("id", 0)):
            names[int(entry["id"])] = str(entry.get("name", entry["id"]))
            if entry.get("color") is not None:
                colours[int(entry["id"])] = tuple(int(c) for c in entry["color"][:3])
    with Slide(slide_path) as slide:
        mpp, height, width = slide.mpp, slide.height, slide.width
    store = LabelStore(height, width, folder, dtype=_label_dtype(meta), pyramid=False)
    if target.name.lower().endswith(".geojson"):
        found = slide_labels.write_geojson(target, store, names, colours)
        return f"{target.name}: {found} objects for QuPath, in slide pixels"
    levels = slide_labels.write_omezarr(target, store, names, colours, pixel_size_um=mpp,
                                        name=slide_labels.label_name(slide_path))
    return f"{target.name}: OME-Zarr labels, {levels} levels (napari: open {target.name}/labels/" \
           f"{slide_labels.label_name(slide_path)})"


def fingerprint(meta, model_name: str, settings, slide) -> dict:
    """What the labels depend on: a rerun with anything else different starts the slide over."""
    return {"model": str(getattr(meta, "id", None) or model_name),
            "version": str(getattr(meta, "version", "")), "tile": settings.aligned_tile(),
            "overlap": settings.overlap, "align": settings.align, "sigma": settings.sigma_scale,
            "size": [slide.width, slide.height]}


class SlideProgress:
    """Tiles done, percent and time left on one line; in a log a line every tenth of the way."""

    def __init__(self, stream: TextIO, name: str, enabled: bool) -> None:
        self.stream, self.name, self.enabled = stream, name, enabled
        self.interactive = stream.isatty()
        self.started = time.monotonic()
        self._last_tenth = -1

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled or not total:
            return
        left = time_left(done, total, time.monotonic() - self.started)
        text = f"{self.name}: {done}/{total} tiles ({100 * done // total}%)" + (f", about {left} left" if left else "")
        if self.interactive:
            self.stream.write("\r" + text + "   ")
            self.stream.flush()
        elif 10 * done // total > self._last_tenth:
            self._last_tenth = 10 * done // total
            print(text, file=self.stream)

    def end(self) -> None:
        if self.enabled and self.interactive:
            self.stream.write("\n")


def predict_one_slide(predictor, meta, model_name: str, path: Path, folder: Path, settings, *,
                      tissue_only: bool, quiet: bool, err: TextIO = sys.stderr) -> str:
    """Predict one slide into `folder`; returns a one-line summary. Errors propagate to the caller."""
    from segstudio.core.imageio import Slide
    from segstudio.core.label_store import LabelStore
    from segstudio.core.run_marks import RunMarks, StoreSink
    from segstudio.core.tissue import detect_tissue
    from segstudio.engine.predict.slide import predict_slide

    with Slide(path) as slide:
        marks = RunMarks(folder, fingerprint(meta, model_name, settings, slide))
        if marks.complete:
            return f"{path.name}: already predicted into {folder} (delete it to predict again)"
        if marks.restarted:
            print(f"note: {path.name}: {folder} was made with other settings; predicting it again", file=err)
            _clear_labels(folder)
        folder.mkdir(parents=True, exist_ok=True)
        store = LabelStore(slide.height, slide.width, folder, dtype=_label_dtype(meta), pyramid=False)
        tissue = detect_tissue(slide) if tissue_only else None
        if tissue is not None and not quiet:
            print(f"{path.name}: {slide.width} x {slide.height} px, tissue on {tissue.fraction:.0%} of it",
                  file=err)
        progress = SlideProgress(err, path.name, not quiet)
        try:
            result = predict_slide(predictor, slide, StoreSink(store, marks), settings, tissue=tissue,
                                   progress=progress)
        finally:
            progress.end()
        store.save()
        marks.finish()
    resumed = f", {count(result.blocks_resumed, 'block')} kept from an earlier run" if result.blocks_resumed else ""
    return (f"{path.name} -> {folder} ({count(result.tiles_run, 'tile')} predicted, "
            f"{result.tiles_skipped} of glass skipped{resumed}) in {duration(result.seconds)}")


def _label_dtype(meta):
    import numpy as np

    ids = [int(c.get("id", 0)) for c in (getattr(meta, "classes", None) or [])]
    return np.uint16 if ids and max(ids) > 255 else np.uint8


def _clear_labels(folder: Path) -> None:
    """Labels made with other settings: remove their chunks (and only those) before starting over."""
    import shutil

    chunks = folder / "c"
    if chunks.is_dir():
        shutil.rmtree(chunks)
