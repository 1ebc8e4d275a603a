"""Dataset folders from someone else: nothing outside the folder is read, written or deleted; damage is named."""
import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from segstudio.core import dataset, nnunet
from segstudio.core.autosave import AutosaveStore
from segstudio.core.dataset import DatasetError, ExportItem, export_many, load_entry, load_manifest
from segstudio.core.labels import ClassTable


def export_one(root, seed=0, source="/data/a.tif", shape=(12, 10)):
    rng = np.random.default_rng(seed)
    item = ExportItem(pixels=rng.integers(0, 60000, shape, dtype=np.uint16),
                      mask=rng.integers(0, 2, shape).astype(np.uint8), source=source)
    return export_many(root, [item], ClassTable.default())[0]


def rewrite_manifest(root, change):
    manifest = json.loads((root / "dataset.json").read_text())
    change(manifest["entries"][0])
    (root / "dataset.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize("field, value", [
    ("id", "../../../victim/important"), ("id", "a/b"), ("id", ""), ("id", 5),
    ("image", "/etc/passwd"), ("image", "images/../../victim.tif"), ("mask", "masks/../../x.png"),
    ("hand", "C:\\\\victim.png"), ("mask", "hand/x.png"),
])
def test_a_manifest_entry_that_names_anything_outside_is_refused(tmp_path, field, value):
    root = tmp_path / "ds"
    victim = tmp_path / "victim" / "important"
    victim.parent.mkdir()
    victim.write_text("keep me")
    export_one(root)
    rewrite_manifest(root, lambda e: e.__setitem__(field, value))
    with pytest.raises(DatasetError, match="refused"):
        load_manifest(root)
    with pytest.raises(DatasetError):
        export_one(root, seed=1)  # replacing/deleting entries never follows the hostile entry
    with pytest.raises(DatasetError):
        nnunet.export_nnunet(root, tmp_path / "nnunet")
    assert victim.read_text() == "keep me"


def test_an_export_never_writes_through_a_symlinked_folder(tmp_path):
    root = tmp_path / "ds"
    outside = tmp_path / "outside"
    outside.mkdir()
    root.mkdir()
    (root / "masks").symlink_to(outside)
    with pytest.raises(DatasetError, match="outside the dataset"):
        export_one(root)
    assert list(outside.iterdir()) == []


def test_an_entry_file_linked_outside_the_dataset_is_not_read(tmp_path):
    root = tmp_path / "ds"
    entry = export_one(root)
    secret = tmp_path / "secret.png"
    os.replace(root / entry["mask"], secret)
    (root / entry["mask"]).symlink_to(secret)
    with pytest.raises(DatasetError, match="outside the dataset"):
        load_entry(root, entry)


def test_a_fifo_in_place_of_an_image_is_refused_without_blocking(tmp_path):
    root = tmp_path / "ds"
    entry = export_one(root)
    (root / entry["image"]).unlink()
    os.mkfifo(root / entry["image"])
    outcome = {}
    worker = threading.Thread(target=lambda: outcome.setdefault("result", _try(load_entry, root, entry)), daemon=True)
    worker.start()
    worker.join(5)
    assert not worker.is_alive(), "reading the dataset blocked on a FIFO"
    assert "not a regular file" in str(outcome["result"])


def _try(function, *args, **kwargs):
    try:
        return function(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - the test inspects it
        return exc


def test_files_that_differ_from_their_recorded_hashes_are_reported(tmp_path):
    root = tmp_path / "ds"
    entry = export_one(root)
    other = export_one(tmp_path / "other", seed=5)
    os.replace(tmp_path / "other" / other["mask"], root / entry["mask"])  # a valid PNG, the wrong one
    with pytest.raises(DatasetError, match="does not match the hash"):
        load_entry(root, entry)
    assert any("mask_sha256" in line for line in dataset.verify_dataset(root))
    entry2 = export_one(tmp_path / "third", seed=7)
    rewrite_manifest(tmp_path / "third", lambda e: e.__setitem__("sha256", "0" * 64))
    assert load_entry(tmp_path / "third", entry2)  # pixel hashes are checked on request
    with pytest.raises(DatasetError, match="sha256"):
        load_entry(tmp_path / "third", load_manifest(tmp_path / "third")["entries"][0], check_pixels_hash=True)


def test_reexport_keeps_the_old_files_until_the_manifest_is_replaced(tmp_path):
    root = tmp_path / "ds"
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 60000, (12, 10), dtype=np.uint16)
    first = export_many(root, [ExportItem(pixels, np.zeros((12, 10), np.uint8), "/a.tif")], ClassTable.default())[0]
    second = export_many(root, [ExportItem(pixels, np.ones((12, 10), np.uint8), "/a.tif")], ClassTable.default())[0]
    assert first["mask"] != second["mask"] and not (root / first["mask"]).exists()
    third = export_many(root, [ExportItem(pixels, np.zeros((12, 10), np.uint8), "/a.tif")], ClassTable.default())[0]
    assert third["mask"] == first["mask"] and not (root / second["mask"]).exists()
    assert sorted(p.name for p in (root / "masks").iterdir()) == [third["mask"].split("/")[1]]


KILLED_EXPORT = r"""
import sys, numpy as np
from segstudio.core.dataset import ExportItem, export_many
from segstudio.core.labels import ClassTable
import segstudio.core.dataset as ds
rng = np.random.default_rng(0)
pixels = rng.integers(0, 60000, (64, 64), dtype=np.uint16)
real = ds.atomic_write_json
def stall(*a, **k):
    print("files written", flush=True)
    import time; time.sleep(60)
ds.atomic_write_json = stall
export_many(sys.argv[1], [ExportItem(pixels, np.ones((64, 64), np.uint8), "/a.tif")], ClassTable.default())
"""


def test_an_export_killed_before_its_manifest_leaves_every_entry_true(tmp_path):
    root = tmp_path / "ds"
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 60000, (64, 64), dtype=np.uint16)
    export_many(root, [ExportItem(pixels, np.zeros((64, 64), np.uint8), "/a.tif")], ClassTable.default())
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    process = subprocess.Popen([sys.executable, "-c", KILLED_EXPORT, str(root)], stdout=subprocess.PIPE, env=env)
    assert process.stdout.readline().strip() == b"files written"
    process.send_signal(signal.SIGKILL)
    process.wait()
    for entry in load_manifest(root)["entries"]:
        _, mask, _ = load_entry(root, entry, check_pixels_hash=True)  # hashes agree with the files
        assert mask.max() == 0  # the old mask: the killed export's mask is not described by any entry


def test_stale_temp_files_in_a_dataset_are_cleared_by_the_next_export(tmp_path):
    root = tmp_path / "ds"
    export_one(root)
    debris = root / "masks" / ".abc.png.0123abcd.tmp"
    debris.write_bytes(b"x")
    old = time.time() - 7200
    os.utime(debris, (old, old))
    export_one(root, seed=3, source="/b.tif")
    assert not debris.exists()


def test_odd_and_long_source_names_export_and_round_trip(tmp_path):
    root = tmp_path / "ds"
    odd = os.fsdecode(b"/data/\xff\xfe-slide.tif")
    long_name = "/data/" + "n" * 250 + ".tif"
    export_one(root, source=odd)
    export_one(root, seed=1, source=long_name)
    assert {e["source"] for e in load_manifest(root)["entries"]} == {odd, long_name}
    export_one(root, seed=2, source=odd)  # a changed file under the same odd name replaces its entry
    assert len(load_manifest(root)["entries"]) == 2


def test_autosave_works_for_a_file_name_that_is_not_utf8(tmp_path):
    store = AutosaveStore(tmp_path / "autosave")
    image = tmp_path / os.fsdecode(b"\xff\xfe-slide.png")
    image.write_bytes(b"")
    mask = np.zeros((4, 5), np.uint8)
    mask[1, 2] = 1
    store.save(image, mask, ClassTable.default(), None)
    record = store.load(image)
    assert record is not None and record.mask[1, 2] == 1 and record.image_path == AutosaveStore.resolved(image)
    assert AutosaveStore.key(tmp_path / "plain.png") == AutosaveStore.key(str(tmp_path / "plain.png"))
    store.end_session()


def test_a_user_data_folder_that_cannot_be_created_does_not_stop_start_up(tmp_path, monkeypatch):
    from segstudio.core import paths
    from segstudio.models.library import ModelLibrary

    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the data folder's parent should be")  # mkdir fails, even for root
    monkeypatch.setenv("SEGSTUDIO_DATA_DIR", str(blocker / "data"))
    library = ModelLibrary(tmp_path / "none")
    assert library.entries() == [] and library.active_id() is None
    assert "cannot be created" in paths.folder_problem(paths.autosave_dir())
    store = AutosaveStore()
    assert store.recoverable() == []
    with pytest.raises(OSError, match="Cannot save"):
        store.save(tmp_path / "a.png", np.zeros((2, 2), np.uint8), ClassTable.default(), None)


def test_a_manifest_nested_100000_deep_is_a_clear_error(tmp_path):
    root = tmp_path / "ds"
    root.mkdir()
    (root / "dataset.json").write_text('{"format": "segstudio-dataset", "version": 1, "entries": '
                                       + "[" * 100_000 + "]" * 100_000 + ', "classes": []}')
    with pytest.raises(DatasetError, match="nested too deeply"):
        load_manifest(root)
