"""The reviewed regions of a whole slide as dataset entries: patches, not the slide.

A slide of 100,000 x 100,000 pixels cannot be a dataset entry (it would be written, and read back for
training, whole), and most of it was never looked at by a person. What a person painted or corrected is
in the slide's hand map (a LabelStore of 0/1, beside its labels): the slide is cut into a fixed grid of
PATCH x PATCH cells, and every cell that holds a hand-painted pixel becomes one entry, with its pixels,
its labels, its hand map and the slide's pixel size. The grid is fixed (cells start at multiples of
PATCH), so exporting the slide again after more corrections replaces the entries of the cells it had
(same source name) and adds the new ones; nothing is duplicated.

Each entry records where it came from: ``region`` = {"slide": path, "x", "y", "width", "height"} in
level-0 pixels, and ``pixel_size_um`` (micrometres per pixel, when the slide records it).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from pathlib import Path

from segstudio.core.dataset import ExportItem
from segstudio.core.label_store import LabelStore
from segstudio.core.labels import ClassTable

#: The side of a patch in level-0 pixels: two label chunks, and four 256 px training crops with room to move.
PATCH = 1024

Box = tuple[int, int, int, int]  # y, x, height, width in level-0 pixels


def autosaved_labels_folder(slide_path: Path) -> Path:
    """Where the slide window keeps a slide's labels (the hand map is beside it, ``<key>.hand.zarr``)."""
    from segstudio.core import paths
    from segstudio.core.autosave import AutosaveStore

    return paths.autosave_dir() / "slides" / f"{AutosaveStore.key(slide_path)}.zarr"


def open_autosaved_labels(slide) -> tuple[LabelStore, LabelStore] | None:
    """The labels and hand map the slide window saved for ``slide`` (headless: no pyramid), or None."""
    import zarr

    folder = autosaved_labels_folder(slide.path)
    hand_folder = folder.with_name(folder.stem + ".hand.zarr")
    if not (folder / "zarr.json").is_file():
        return None
    dtype = zarr.open_array(folder, mode="r").dtype  # uint16 when a class id exceeds 255
    labels = LabelStore(slide.height, slide.width, folder, dtype=dtype, pyramid=False)
    hand = LabelStore(slide.height, slide.width, hand_folder if (hand_folder / "zarr.json").is_file() else None,
                      pyramid=False)
    return labels, hand


def reviewed_regions(hand: LabelStore, patch: int = PATCH) -> list[Box]:
    """The grid cells of ``patch`` x ``patch`` level-0 pixels that hold a hand-painted pixel, row by row.

    Only cells whose hand-map chunks exist (painted, or saved earlier) are read, so a slide with a few
    corrections costs a few reads, whatever its size.
    """
    found = []
    for cy in range(math.ceil(hand.height / patch)):
        for cx in range(math.ceil(hand.width / patch)):
            y, x = cy * patch, cx * patch
            h, w = min(patch, hand.height - y), min(patch, hand.width - x)
            if hand.any_in(y, x, h, w) and hand.read(y, x, h, w).any():
                found.append((y, x, h, w))
    return found


def region_source(slide_path: Path, box: Box) -> str:
    """The stable name of a patch: the slide's path and the cell (the dataset replaces an entry by it)."""
    y, x, h, w = box
    return f"{Path(slide_path).resolve()}#x={x},y={y},w={w},h={h}"


def slide_items(slide, labels: LabelStore, hand: LabelStore, classes: ClassTable | None, regions: list[Box], *,
                model_version: str | None = None, cancelled: Callable[[], bool] = lambda: False,
                forget: bool = False) -> Iterator[ExportItem]:
    """One ExportItem per region, read when it is asked for (so an export holds one patch at a time).

    ``forget``: drop the chunks read from disk after each patch (LabelStore.forget_saved), for stores
    opened just for the export; a window's stores keep theirs.
    """
    path = Path(slide.path).resolve()
    for box in regions:
        if cancelled():
            return
        y, x, h, w = box
        mask, hand_map = labels.read(y, x, h, w), hand.read(y, x, h, w) != 0
        if forget:
            labels.forget_saved()
            hand.forget_saved()
        yield ExportItem(
            pixels=slide.read_region(0, x, y, w, h), mask=mask, hand=hand_map, source=region_source(path, box),
            model_version=model_version, classes=classes, pixel_size_um=slide.mpp,
            region={"slide": str(path), "x": x, "y": y, "width": w, "height": h})
