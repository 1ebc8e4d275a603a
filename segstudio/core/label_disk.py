"""A label store's chunks on disk: the zarr array, which chunks it holds, and the runs a save writes.

Each chunk is a file of its own, written atomically by zarr's local store (a new file renamed over the old
one), so a save killed half way leaves every chunk whole: from that save or the one before.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

WRITE_RUN = 16  # neighbouring chunks of a row written in one call (a 4 MiB buffer of 8-bit labels)


def runs(taken: list[tuple[int, int, np.ndarray | None]]) -> Iterator[list]:
    """A sorted snapshot cut into runs of neighbouring chunks along a row, WRITE_RUN at most."""
    run: list = []
    for item in taken:
        if run and (item[0] != run[-1][0] or item[1] != run[-1][1] + 1 or len(run) == WRITE_RUN):
            yield run
            run = []
        run.append(item)
    if run:
        yield run


def open_array(folder: Path, height: int, width: int, chunk: int, dtype: np.dtype):
    import zarr

    if (folder / "zarr.json").exists():
        array = zarr.open_array(folder, mode="r+")
        if tuple(array.shape) != (height, width):
            raise ValueError(f"the labels in {folder} are {array.shape[1]} x {array.shape[0]}, "
                             f"not the slide's {width} x {height}")
        return array
    # Chunks that hold only zeros are never written (zarr leaves them out), so erased areas cost nothing.
    return zarr.create_array(folder, shape=(height, width), chunks=(chunk, chunk), dtype=dtype, fill_value=0,
                             config={"write_empty_chunks": False})


def stored_chunks(array) -> set[tuple[int, int]]:
    """Chunks present on disk, from the folder listing (zarr v3's default layout: c/<row>/<col>)."""
    root = Path(str(array.store_path.store.root)) / array.store_path.path / "c"
    found = set()
    if root.is_dir():
        for row in root.iterdir():
            if row.name.isdigit():
                found.update((int(row.name), int(col.name)) for col in row.iterdir() if col.name.isdigit())
    return found
