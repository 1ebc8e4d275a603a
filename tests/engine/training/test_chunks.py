"""Datasets larger than memory: chunked copies made once, crops read window by window, the same crops as
from memory, and a fine-tune that never loads the dataset whole."""
from __future__ import annotations

import cv2
import numpy as np
import torch
import zarr

from segstudio.engine.training import chunks
from segstudio.engine.training.data import CropDataset, load_training_data
from tests.engine.training.test_loop import quick_config, save_base_model, write_dataset

NORMALISATION = {"kind": "percentile", "low": 1.0, "high": 99.8}


def _load(data, tmp_path, **kwargs):
    return load_training_data([data], in_channels=1, normalisation=NORMALISATION, num_classes=2,
                              val_whole_max_pixels=1 << 20, chunk_dir=tmp_path / "chunks", **kwargs)


def test_chunked_crops_equal_the_crops_of_images_held_in_memory(tmp_path):
    data = write_dataset(tmp_path / "data", n=6, size=64)
    whole = _load(data, tmp_path)
    chunked = _load(data, tmp_path, in_memory_max_pixels=0)
    assert [type(i).__name__ for i in chunked.train] == ["ChunkedImage"] * len(whole.train)
    assert any("crop by crop" in note for note in chunked.notes)
    a = CropDataset(whole.train, 40, augment=True, strength=1.0, hand_weight=2.0, seed=3)
    b = CropDataset(chunked.train, 40, augment=True, strength=1.0, hand_weight=2.0, seed=3)
    assert len(a) == len(b)
    for k in range(len(a)):
        (xa, ya, wa), (xb, yb, wb) = a[k], b[k]
        assert torch.allclose(xa, xb) and torch.equal(ya, yb) and torch.equal(wa, wb)


def test_the_loader_reads_only_the_windows_of_its_crops(tmp_path, monkeypatch):
    """However large the dataset, an epoch reads two crop-sized windows per crop (the pixels; the class ids
    with the hand map) and no whole image."""
    data = write_dataset(tmp_path / "data", n=5, size=300)
    chunked = _load(data, tmp_path, in_memory_max_pixels=0)
    reads: list[tuple[int, int]] = []
    real = chunks.read_window

    def spy(array, y, x, h, w):
        out = real(array, y, x, h, w)
        reads.append(out.shape[:2])
        return out

    import segstudio.core.dataset as dataset_module

    whole_reads = []
    monkeypatch.setattr(chunks, "read_window", spy)
    monkeypatch.setattr(dataset_module, "load_entry", lambda *a, **k: whole_reads.append(a))
    crop, batch = 64, 4
    dataset = CropDataset(chunked.train, crop, augment=False, strength=1.0, hand_weight=1.0, seed=0)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch)
    seen = 0
    for x, _y, _w in loader:
        seen += x.shape[0]
        # Everything read since the last batch: this batch's crops, no more.
        assert len(reads) == 2 * x.shape[0]
        assert all(h <= crop and w <= crop for h, w in reads)
        reads.clear()
    assert seen == len(dataset) > 4 * batch
    assert whole_reads == []


def test_a_copy_is_made_once_and_again_when_the_mask_changes(tmp_path, monkeypatch):
    import json

    from segstudio.core.dataset import load_manifest

    data = write_dataset(tmp_path / "data", n=2)
    entry = load_manifest(data)["entries"][0]
    made = []
    real = chunks._write_copy
    monkeypatch.setattr(chunks, "_write_copy", lambda path, *a: (made.append(path), real(path, *a)))
    first = chunks.ensure_copy(data, entry, tmp_path / "chunks")
    assert chunks.ensure_copy(data, entry, tmp_path / "chunks") == first and len(made) == 1
    assert json.loads((first / "segstudio.json").read_text())["height"] == 48
    # A corrected mask (this test's entries record no hashes: the file itself tells).
    mask = cv2.imread(str(data / entry["mask"]), cv2.IMREAD_UNCHANGED)
    mask[:10, :10] = 1 - mask[:10, :10]
    cv2.imwrite(str(data / entry["mask"]), mask)
    again = chunks.ensure_copy(data, entry, tmp_path / "chunks")
    assert again != first and len(made) == 2
    assert np.array_equal(np.asarray(zarr.open_group(again, mode="r")["targets"][..., 0]), mask)
    assert not list((tmp_path / "chunks").glob("*.part-*"))  # no unfinished copy left behind


def test_one_chunked_image_trains_on_its_first_part_and_is_checked_on_its_strip(tmp_path):
    data = write_dataset(tmp_path / "one", n=1, val_every=None, size=100)
    loaded = _load(data, tmp_path, in_memory_max_pixels=0)
    assert loaded.val_source == "strip"
    (train,), (val,) = loaded.train, loaded.val
    assert train.hw == (100, 80) and val.hw == (100, 20) and val.box[1] == 80
    whole = _load(data, tmp_path)
    held = val.loaded(keep_raw_above=1 << 20)
    assert np.array_equal(held.labels, whole.val[0].labels)
    assert torch.allclose(held.image, whole.val[0].image)


def test_a_fine_tune_over_the_memory_limit_trains_from_chunks_and_saves_a_version(tmp_path):
    from segstudio.engine.training.loop import fine_tune

    data = write_dataset(tmp_path / "data", n=8)
    base = save_base_model()
    config = quick_config(base, data, steps=4, in_memory_max_pixels=8 * 48 * 48 - 1,
                          chunk_dir=str(tmp_path / "chunks"))
    result = fine_tune(config)
    assert result.status == "done" and result.version == "blobs/v2"
    assert any("crop by crop" in note for note in result.notes)
    assert len(list((tmp_path / "chunks").glob("*.zarr"))) == 8


def test_copies_unused_for_a_month_are_removed_by_the_next_run_and_its_own_are_kept(tmp_path):
    import os
    import time

    data = write_dataset(tmp_path / "data", n=3, size=64)
    first = _load(data, tmp_path, in_memory_max_pixels=0)
    used = {item.path for item in first.train + first.val}
    stale = tmp_path / "chunks" / "gone-0123456789abcdef.zarr"  # a copy of a mask corrected long ago
    stale.mkdir()
    (stale / "segstudio.json").write_text("{}")
    (stale / "pixels").write_bytes(b"x" * 4096)
    recent = tmp_path / "chunks" / "other-fedcba9876543210.zarr"  # another dataset's, used last week
    recent.mkdir()
    (recent / "segstudio.json").write_text("{}")
    month = time.time() - 40 * 86400
    for path in [stale / "segstudio.json", recent / "segstudio.json", *(p / "segstudio.json" for p in used)]:
        os.utime(path, (month, month))  # this run's own copies were last used long ago too
    week = time.time() - 7 * 86400
    os.utime(recent / "segstudio.json", (week, week))
    again = _load(data, tmp_path, in_memory_max_pixels=0)
    assert not stale.exists() and recent.exists()
    assert all(path.exists() for path in used)  # reused by this run, so kept (and marked used now)
    assert {item.path for item in again.train + again.val} == used
    assert any("Removed 1 chunked copy" in note for note in again.notes)
