"""Training data larger than memory: each dataset image copied once into chunked storage, read crop by crop.

Loading every image of a dataset into memory before training (what a small dataset still does, see
data.py) runs out of memory once the dataset is larger than the computer's memory. Here each entry (its
pixels; its mask and hand map side by side; its instance map when that teaches borders, see borders.py) is
copied once into a zarr folder of CHUNK x CHUNK chunks; training then reads only the chunks under each
crop, so memory holds a few crops, whatever the size of the dataset.

Copies nobody has used for PRUNE_AFTER_DAYS are removed when a later run has made or reused its own
(`prune_copies`): an entry whose mask was corrected since leaves its old copy behind, and the folder would
otherwise grow by the dataset's size at every correction.

A copy is made from one entry at a time (so memory holds at most the largest image, once), written under
a temporary name and renamed into place, and named after the entry's content (its id, which is the hash
of its pixels) and the hashes of its mask, hand map and objects: a corrected mask gets a new copy, an
unchanged entry is never copied again, and ranks of a torchrun job that race to make the same copy both
end with a complete one. The copy also keeps a strided sample of the pixels (at most a million), from
which the normalisation levels are taken exactly as the predictor takes them from a whole image, and the
largest class id, so the checks of an entry need no pass over its pixels.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from segstudio.engine.predict.model_input import ModelInput
from segstudio.engine.training.borders import objects_teaching_borders
from segstudio.engine.training.errors import TrainingError

CHUNK = 256
#: A copy unused for this long is removed by the next chunked run (its entry makes it again if needed).
PRUNE_AFTER_DAYS = 30
#: The pixel sample kept for the normalisation levels: the predictor's percentile sample size.
SAMPLE_PIXELS = 1_000_000
_FORMAT = 1


def default_chunk_dir() -> Path:
    from segstudio.core.paths import user_data_dir

    return user_data_dir() / "training-chunks"


def copy_key(folder: Path, entry: Mapping) -> str:
    """The name of an entry's chunked copy: its id and what its mask, hand map and objects hold."""
    parts = [str(entry["id"])]
    for field, hash_field in (("mask", "mask_sha256"), ("hand", "hand_sha256"), ("objects", "objects_sha256")):
        if field == "objects" and not entry.get("objects"):
            continue  # exported before objects were kept
        recorded = entry.get(hash_field)
        if recorded:
            parts.append(str(recorded))
        else:  # an older entry without hashes: its file's size and time stand for its content
            stat = (Path(folder) / str(entry[field])).stat()
            parts.append(f"{stat.st_size}-{stat.st_mtime_ns}")
    digest = hashlib.sha256("/".join(parts).encode()).hexdigest()[:16]
    return f"{entry['id']}-{digest}"


def ensure_copy(folder: Path, entry: Mapping, chunk_dir: Path) -> Path:
    """The chunked copy of one dataset entry, made now if there is none yet."""
    from segstudio.core.dataset import load_entry, load_objects

    target = Path(chunk_dir) / f"{copy_key(folder, entry)}.zarr"
    if (target / "segstudio.json").is_file():
        os.utime(target / "segstudio.json")  # used now: pruning goes by the last use
        return target
    pixels, mask, hand = load_entry(folder, entry)
    # Kept whatever the model: a copy serves every later run, and only those of a border output read them.
    objects = objects_teaching_borders(load_objects(folder, entry), mask)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f"{target.name}.part-{os.getpid()}")
    shutil.rmtree(temporary, ignore_errors=True)
    try:
        _write_copy(temporary, pixels, mask, hand, objects)
        os.rename(temporary, target)
    except OSError:
        if not (target / "segstudio.json").is_file():  # another process finished the same copy first: fine
            raise
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    return target


def prune_copies(chunk_dir: Path, keep, older_than_days: float = PRUNE_AFTER_DAYS, now: float | None = None
                 ) -> tuple[int, int]:
    """Remove the copies in `chunk_dir` (and copies left half-made) last used over `older_than_days` ago,
    except those in `keep`; returns (how many, bytes freed)."""
    import time

    cutoff = (time.time() if now is None else now) - older_than_days * 86400
    keep = {Path(k).resolve() for k in keep}
    removed = freed = 0
    for path in Path(chunk_dir).glob("*.zarr*"):
        marker = path / "segstudio.json"
        try:
            used = (marker if marker.is_file() else path).stat().st_mtime
        except OSError:
            continue
        if not path.is_dir() or path.resolve() in keep or used > cutoff:
            continue
        size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
        shutil.rmtree(path, ignore_errors=True)
        if not path.exists():
            removed, freed = removed + 1, freed + size
    return removed, freed


def _write_copy(path: Path, pixels: np.ndarray, mask: np.ndarray, hand: np.ndarray,
                objects: np.ndarray | None = None) -> None:
    import zarr
    from zarr.codecs import BloscCodec

    h, w, c = pixels.shape
    group = zarr.open_group(path, mode="w")
    # The class ids and the hand map side by side in one array: a crop costs two reads, not three (each
    # read has a fixed cost of a few milliseconds in zarr). LZ4 decompresses faster than zarr's default.
    targets = np.stack([mask, hand.astype(mask.dtype)], axis=-1)
    # The instance map apart: its ids need 16 or 32 bits, the class ids mostly 8; read only for a border output.
    arrays = [("image", pixels), ("targets", targets)] + ([("objects", objects[..., None])] if objects is not None
                                                          else [])
    for name, values in arrays:
        array = group.create_array(name, shape=values.shape, chunks=(CHUNK, CHUNK, values.shape[2]),
                                   dtype=values.dtype, fill_value=0,
                                   compressors=BloscCodec(cname="lz4", clevel=5, shuffle="bitshuffle"))
        array[...] = values
    step = max(1, math.ceil(math.sqrt(h * w / SAMPLE_PIXELS)))
    sample = np.ascontiguousarray(pixels[::step, ::step])
    group.create_array("sample", shape=sample.shape, dtype=sample.dtype, chunks=sample.shape)[...] = sample
    # Written last: a folder without it is an unfinished copy.
    (path / "segstudio.json").write_text(json.dumps({
        "format": _FORMAT, "height": h, "width": w, "channels": c,
        "max_label": int(mask.max()) if mask.size else 0, "sample_step": step, "objects": objects is not None}))


def read_window(array, y: int, x: int, h: int, w: int) -> np.ndarray:
    """One window of a chunked array; every read of training pixels goes through here."""
    return np.asarray(array[y:y + h, x:x + w])


class ChunkedImage:
    """A training image (or the part of one held out, ``box``) read window by window from its chunked copy.

    Holds no pixels: the zarr arrays are opened in each process that reads (a DataLoader's worker gets the
    path, not open files), and a window is normalised with the levels of the whole image.
    """

    def __init__(self, key: str, path: Path, box: tuple[int, int, int, int], levels, *, in_channels: int,
                 normalisation: Mapping, model_input: Mapping | None, has_objects: bool = False):
        self.key, self.path, self.box, self.levels = key, Path(path), tuple(int(v) for v in box), levels
        self.in_channels, self.normalisation = int(in_channels), dict(normalisation)
        self.model_input = dict(model_input) if model_input else None
        self.has_objects = bool(has_objects)  # the copy holds an instance map that teaches borders
        self.raw = None
        self._arrays = None

    @classmethod
    def open(cls, key: str, path: Path, *, in_channels: int, normalisation: Mapping,
             model_input: Mapping | None, num_classes: int, borders: bool = False) -> ChunkedImage:
        """The copy at ``path``; with ``borders``, its instance map too (when it holds one)."""
        import zarr

        info = json.loads((Path(path) / "segstudio.json").read_text())
        if info["max_label"] >= num_classes:
            raise TrainingError(
                f"The mask of {key} uses class id {info['max_label']}, but the model predicts only "
                f"{num_classes} classes. Fine-tune from the window offers to extend the model; on the command "
                "line add --extend-classes")
        sample = np.asarray(zarr.open_group(path, mode="r")["sample"][...])
        try:
            levels = ModelInput(sample, in_channels, normalisation, model_input).levels
        except ValueError as e:
            raise TrainingError(f"Cannot use {key} with this model: {e}") from e
        return cls(key, path, (0, 0, info["height"], info["width"]), levels, in_channels=in_channels,
                   normalisation=normalisation, model_input=model_input,
                   has_objects=borders and info.get("objects", False))

    def part(self, key: str, y: int, x: int, h: int, w: int) -> ChunkedImage:
        """A part of this image (in its own coordinates), e.g. the strip held out to check the model."""
        y0, x0 = self.box[0] + y, self.box[1] + x
        return ChunkedImage(key, self.path, (y0, x0, h, w), self.levels, in_channels=self.in_channels,
                            normalisation=self.normalisation, model_input=self.model_input,
                            has_objects=self.has_objects)

    @property
    def hw(self) -> tuple[int, int]:
        return self.box[2], self.box[3]

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_arrays"] = None  # each process opens its own
        return state

    def _open(self):
        if self._arrays is None:
            import zarr

            group = zarr.open_group(self.path, mode="r")
            self._arrays = (group["image"], group["targets"], group["objects"] if self.has_objects else None)
        return self._arrays

    def window(self, y: int, x: int, h: int, w: int) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
        """Network input (C, h, w), class ids and hand map of a window (coordinates within ``box``)."""
        image, targets, _objects = self._open()
        y, x = self.box[0] + y, self.box[1] + x
        block = read_window(image, y, x, h, w)
        source = ModelInput(block, self.in_channels, self.normalisation, self.model_input, levels=self.levels)
        values = source.region(slice(None), slice(None))
        labels_and_hand = read_window(targets, y, x, h, w)
        return (torch.from_numpy(np.ascontiguousarray(values, np.float32)), labels_and_hand[..., 0],
                labels_and_hand[..., 1] != 0)

    def objects_window(self, y: int, x: int, h: int, w: int) -> np.ndarray | None:
        """The instance map of a window (coordinates within ``box``), or None when the copy holds none."""
        objects = self._open()[2]
        if objects is None:
            return None
        return read_window(objects, self.box[0] + y, self.box[1] + x, h, w)[..., 0]

    def loaded(self, keep_raw_above: int):
        """This image whole in memory (for validation, one image at a time)."""
        from segstudio.engine.training.data import LabelledImage

        image = self._open()[0]
        y, x, h, w = self.box
        tensor, labels, hand = self.window(0, 0, h, w)
        raw = read_window(image, y, x, h, w) if h * w > keep_raw_above else None
        return LabelledImage(self.key, tensor, labels, hand, raw, self.objects_window(0, 0, h, w))
