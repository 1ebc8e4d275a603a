"""The autosave journal: entries round-trip exactly, failures are reported, crashed sessions are found."""
import errno
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from segstudio.core import storage
from segstudio.core.autosave import AutosaveStore
from segstudio.core.labels import ClassTable

REPO_ROOT = Path(__file__).resolve().parents[2]


def _work(rng, shape=(20, 30)):
    classes = ClassTable.default()
    classes.add("stroma")
    mask = rng.integers(0, 3, shape).astype(np.uint8)
    hand = rng.random(shape) > 0.7
    return mask, classes, hand


def test_autosave_round_trip(tmp_path, rng):
    store = AutosaveStore(tmp_path / "autosave")
    image = tmp_path / "slide 1.tif"
    mask, classes, hand = _work(rng)
    saved = store.save(image, mask, classes, hand, extra={"model_version": "nuclei-unet/v2", "zoom": 1.5})
    assert saved.exists() and saved.parent == tmp_path / "autosave"
    record = store.load(image)
    np.testing.assert_array_equal(record.mask, mask)
    assert record.mask.dtype == np.uint8
    np.testing.assert_array_equal(record.hand, hand)
    assert record.classes == classes
    assert record.extra == {"model_version": "nuclei-unet/v2", "zoom": 1.5}
    assert abs((record.saved_at - record.saved_at.now(record.saved_at.tzinfo)).total_seconds()) < 3600
    assert record.image_path == image.resolve()


def test_autosave_defaults_to_the_user_data_folder(_isolated_user_data, rng):
    store = AutosaveStore()
    mask, classes, hand = _work(rng)
    path = store.save("relative/image.png", mask, classes, hand)
    assert _isolated_user_data in path.parents


def test_same_image_under_different_spellings_shares_one_entry(tmp_path, rng, monkeypatch):
    store = AutosaveStore(tmp_path / "autosave")
    (tmp_path / "data").mkdir()
    monkeypatch.chdir(tmp_path)
    mask, classes, hand = _work(rng)
    store.save("data/../data/img.png", mask, classes, hand)
    assert store.load(tmp_path / "data" / "img.png") is not None
    assert store.key("data/img.png") == store.key(tmp_path / "data" / "img.png")
    assert store.key("data/other.png") != store.key("data/img.png")


def test_a_newer_autosave_replaces_the_older_one(tmp_path, rng):
    store = AutosaveStore(tmp_path / "autosave")
    mask, classes, hand = _work(rng)
    store.save("a.png", mask, classes, hand)
    mask2 = np.full_like(mask, 2)
    store.save("a.png", mask2, classes, None)
    record = store.load("a.png")
    np.testing.assert_array_equal(record.mask, mask2)
    assert not record.hand.any()


def test_load_without_autosave_is_none_and_discard_removes_it(tmp_path, rng):
    store = AutosaveStore(tmp_path / "autosave")
    assert store.load("never-saved.png") is None
    mask, classes, hand = _work(rng)
    store.save("a.png", mask, classes, hand)
    store.discard("a.png")
    assert store.load("a.png") is None
    store.discard("a.png")  # discarding twice is harmless


def test_damaged_autosave_is_reported_not_silently_ignored(tmp_path, rng):
    store = AutosaveStore(tmp_path / "autosave")
    mask, classes, hand = _work(rng)
    path = store.save("a.png", mask, classes, hand)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError, match=r"Cannot read autosave .*\.npz"):
        store.load("a.png")


def test_autosave_rejects_mismatched_or_unserialisable_input(tmp_path, rng):
    store = AutosaveStore(tmp_path / "autosave")
    mask, classes, hand = _work(rng)
    with pytest.raises(ValueError, match="hand map shape"):
        store.save("a.png", mask, classes, hand[:5])
    with pytest.raises(ValueError, match="JSON"):
        store.save("a.png", mask, classes, hand, extra={"when": object()})
    assert store.load("a.png") is None


def test_autosave_failure_is_an_oserror_naming_the_file(tmp_path, rng, monkeypatch):
    store = AutosaveStore(tmp_path / "autosave")
    mask, classes, hand = _work(rng)

    def full_disk(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    store.begin_session()
    monkeypatch.setattr(storage.os, "fsync", full_disk)
    with pytest.raises(OSError, match=r"Cannot save .*\.npz: the disk is full"):
        store.save("a.png", mask, classes, hand)


def test_cleanly_ended_session_leaves_nothing_to_recover(tmp_path, rng):
    root = tmp_path / "autosave"
    first = AutosaveStore(root)
    first.begin_session()
    mask, classes, hand = _work(rng)
    first.save("a.png", mask, classes, hand)
    first.end_session()
    assert AutosaveStore(root).recoverable() == []
    assert first.load("a.png") is not None  # still there, just not offered for recovery


def test_a_running_session_is_not_mistaken_for_a_crash(tmp_path, rng):
    root = tmp_path / "autosave"
    running = AutosaveStore(root)
    mask, classes, hand = _work(rng)
    running.save("a.png", mask, classes, hand)  # saving starts a session implicitly
    assert running.session_id is not None
    assert running.recoverable() == []  # its own work
    assert AutosaveStore(root).recoverable() == []  # a second window sees it is still alive
    running.end_session()


CRASHING_SESSION = textwrap.dedent(
    """
    import os, sys
    import numpy as np
    from segstudio.core.labels import ClassTable
    from segstudio.core.autosave import AutosaveStore
    store = AutosaveStore(sys.argv[1])
    store.begin_session()
    for name in sys.argv[2:]:
        store.save(name, np.ones((4, 5), np.uint8), ClassTable.default(), np.zeros((4, 5), bool))
    os._exit(3)  # no end_session(): as if the program crashed
    """
)


def test_autosaves_of_a_crashed_session_are_recoverable(tmp_path, rng):
    root = tmp_path / "autosave"
    images = [tmp_path / "first.png", tmp_path / "second.tif"]
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), OMP_NUM_THREADS="1")
    crashed = subprocess.run([sys.executable, "-c", CRASHING_SESSION, str(root), *map(str, images)],
                             env=env, capture_output=True, text=True)
    assert crashed.returncode == 3, crashed.stderr

    store = AutosaveStore(root)
    store.begin_session()
    assert sorted(store.recoverable()) == sorted(p.resolve() for p in images)
    record = store.load(images[0])
    np.testing.assert_array_equal(record.mask, np.ones((4, 5), np.uint8))

    # recovering one image (saving it again in this session) and discarding the other
    store.save(images[0], record.mask, record.classes, record.hand)
    assert store.recoverable() == [images[1].resolve()]
    store.discard(images[1])
    assert store.recoverable() == []
    # the crashed session's marker goes once nothing of it is left
    assert [p.stem for p in (root / "sessions").glob("*.session")] == [store.session_id]
    store.end_session()
    assert list((root / "sessions").glob("*.session")) == []


def test_each_page_of_a_file_keeps_its_own_autosave(tmp_path, rng):
    store = AutosaveStore(tmp_path / "autosave")
    image = tmp_path / "stack.tif"
    first, classes, hand = _work(rng)
    third = (first + 1) % 3
    store.save(image, first, classes, hand, page=0)
    store.save(image, third, classes, ~hand, page=2)
    np.testing.assert_array_equal(store.load(image).mask, first)
    np.testing.assert_array_equal(store.load(image, page=2).mask, third)
    np.testing.assert_array_equal(store.load(image, page=2).hand, ~hand)
    assert store.load(image, page=1) is None
    # A crash (the session's lock gone, its marker left) offers the image once, however many pages hold work.
    os.close(store._session_fd)
    later = AutosaveStore(tmp_path / "autosave")
    later.begin_session()
    assert later.recoverable() == [image.resolve()]
    # Discarding forgets every page.
    store.discard(image)
    assert store.load(image) is None and store.load(image, page=2) is None
    assert not list((tmp_path / "autosave").glob("*.npz"))


# --- one window per image page ---------------------------------------------------------------------------
def test_a_second_store_cannot_claim_an_image_page_another_holds(tmp_path):
    image = tmp_path / "slide.tif"
    image.write_bytes(b"x")
    first, second = AutosaveStore(tmp_path / "autosave"), AutosaveStore(tmp_path / "autosave")
    assert first.claim_image(image) and first.claim_image(image)  # idempotent for the holder
    assert not second.claim_image(image)
    assert second.claim_image(image, page=1)  # another page is another entry
    first.release_image(image)
    assert second.claim_image(image)
    assert not first.claim_image(image)
    second.end_session()  # a clean exit frees every image it held
    assert first.claim_image(image) and first.claim_image(image, page=1)


def test_a_claim_held_by_another_process_is_refused_and_ends_with_that_process(tmp_path):
    image = tmp_path / "slide.tif"
    image.write_bytes(b"x")
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from segstudio.core.autosave import AutosaveStore
            assert AutosaveStore({str(tmp_path / 'autosave')!r}).claim_image({str(image)!r})
            print('held', flush=True)
            time.sleep(60)
        """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        store = AutosaveStore(tmp_path / "autosave")
        assert not store.claim_image(image)
    finally:
        holder.kill()
        holder.wait()
    assert store.claim_image(image)  # the OS dropped the killed process's lock


def test_the_instance_map_is_kept_with_the_mask_and_a_damaged_one_is_reported(tmp_path, rng):
    store = AutosaveStore(tmp_path / "autosave")
    image = tmp_path / "cells.tif"
    mask, classes, hand = _work(rng)
    ids = np.where(mask > 0, rng.integers(1, 70_000, mask.shape), 0).astype(np.uint32)  # beyond uint16
    store.save(image, mask, classes, hand, objects=ids)
    np.testing.assert_array_equal(store.load(image).objects, ids)
    store.save(image, mask, classes, hand)  # objects never found: none kept
    assert store.load(image).objects is None
    with pytest.raises(ValueError, match="instance map"):
        store.save(image, mask, classes, hand, objects=ids[:-1])
    with np.load(store.data_path(image)) as archive:
        parts = dict(archive)
    parts["objects"] = ids[:, :-1]
    with open(store.data_path(image), "wb") as handle:
        np.savez_compressed(handle, **parts)
    with pytest.raises(ValueError, match="objects do not fit"):
        store.load(image)
