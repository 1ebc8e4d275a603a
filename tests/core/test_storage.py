import errno
import json
import os
import random
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from segstudio.core import storage
from segstudio.core.imageio import ImageReadError
from segstudio.core.storage import (
    SaveError,
    atomic_open,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    load_mask_png,
    remove_stale_temp_files,
    save_mask_png,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


def _leftovers(folder: Path, keep: str) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name != keep)


# --- atomic writes -------------------------------------------------------------------------------------
def test_atomic_writes_replace_the_whole_file_and_leave_nothing_behind(tmp_path):
    target = tmp_path / "notes.json"
    atomic_write_bytes(target, b"x" * 10_000)
    atomic_write_text(target, "h\u00e9llo\nworld")
    assert target.read_bytes() == "h\u00e9llo\nworld".encode("utf-8")
    atomic_write_json(target, {"classes": ["b\u00e4ckground"], "n": 2})
    assert json.loads(target.read_text(encoding="utf-8")) == {"classes": ["b\u00e4ckground"], "n": 2}
    assert _leftovers(tmp_path, "notes.json") == []


def test_failure_inside_the_block_keeps_the_old_file_and_removes_the_temp(tmp_path):
    target = tmp_path / "mask.png"
    target.write_bytes(b"old contents")
    with pytest.raises(RuntimeError, match="encoder blew up"):
        with atomic_open(target) as handle:
            handle.write(b"half of the new")
            raise RuntimeError("encoder blew up")
    assert target.read_bytes() == b"old contents"
    assert _leftovers(tmp_path, "mask.png") == []


def test_unserialisable_json_fails_before_touching_the_file(tmp_path):
    target = tmp_path / "settings.json"
    atomic_write_json(target, {"ok": 1})
    with pytest.raises(TypeError):
        atomic_write_json(target, {"bad": object()})
    assert json.loads(target.read_text()) == {"ok": 1}
    assert _leftovers(tmp_path, "settings.json") == []


def test_disk_full_during_save_raises_oserror_naming_file_and_reason(tmp_path, monkeypatch):
    target = tmp_path / "mask.png"
    target.write_bytes(b"old")

    def full_disk(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(storage.os, "fsync", full_disk)
    with pytest.raises(OSError) as caught:
        atomic_write_bytes(target, b"new" * 1000)
    assert str(caught.value) == f"Cannot save {target}: the disk is full"
    assert caught.value.errno == errno.ENOSPC
    assert target.read_bytes() == b"old"
    assert _leftovers(tmp_path, "mask.png") == []


def test_saving_into_a_missing_folder_says_so(tmp_path):
    target = tmp_path / "no-such-folder" / "mask.png"
    with pytest.raises(SaveError, match=r"Cannot save .*mask\.png: the folder .*no-such-folder does not exist"):
        atomic_write_bytes(target, b"data")


def test_saving_over_a_folder_is_refused(tmp_path):
    (tmp_path / "mask.png").mkdir()
    with pytest.raises(OSError, match="folder with that name is in the way"):
        atomic_write_bytes(tmp_path / "mask.png", b"data")


@pytest.mark.skipif(os.name == "nt" or os.geteuid() == 0, reason="needs POSIX permissions that bind the user")
def test_read_only_folder_gives_permission_denied(tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(SaveError, match="permission denied"):
            atomic_write_bytes(folder / "mask.png", b"data")
    finally:
        folder.chmod(0o700)


def test_file_and_folder_are_synced_before_and_after_the_rename(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def spy_fsync(fd):
        events.append("fsync-folder" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync-file")
        real_fsync(fd)

    def spy_replace(src, dst):
        events.append("replace")
        real_replace(src, dst)

    monkeypatch.setattr(storage.os, "fsync", spy_fsync)
    monkeypatch.setattr(storage.os, "replace", spy_replace)
    atomic_write_bytes(tmp_path / "a.bin", b"data")
    expected = ["fsync-file", "replace"] + ([] if os.name == "nt" else ["fsync-folder"])
    assert events == expected


@pytest.mark.skipif(os.name == "nt", reason="POSIX file modes")
def test_an_existing_files_permissions_are_kept(tmp_path):
    target = tmp_path / "shared.png"
    target.write_bytes(b"old")
    target.chmod(0o640)
    atomic_write_bytes(target, b"new")
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    fresh = tmp_path / "fresh.png"
    atomic_write_bytes(fresh, b"new")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o666 & ~umask


def test_stale_temp_files_are_cleaned_but_fresh_ones_and_others_kept(tmp_path):
    old_temp = tmp_path / ".mask.png.0123abcd.tmp"
    new_temp = tmp_path / ".mask.png.89abcdef.tmp"
    user_file = tmp_path / "notes.tmp"
    for path in (old_temp, new_temp, user_file):
        path.write_bytes(b"x")
    long_ago = time.time() - 7200
    os.utime(old_temp, (long_ago, long_ago))
    os.utime(user_file, (long_ago, long_ago))
    assert remove_stale_temp_files(tmp_path) == [old_temp]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([new_temp.name, user_file.name])


# --- a writer killed at random moments ---------------------------------------------------------------
PAYLOAD_SOURCE = """
def payload(n, size):
    return b"PAYLOAD:%08d:" % n + bytes([n % 251]) * size + b":END"
"""
_namespace: dict = {}
exec(PAYLOAD_SOURCE, _namespace)
payload = _namespace["payload"]

WRITER = PAYLOAD_SOURCE + textwrap.dedent(
    """
    import sys
    from segstudio.core.storage import atomic_write_bytes
    target, size = sys.argv[1], int(sys.argv[2])
    print("ready", flush=True)
    n = 1
    while True:
        atomic_write_bytes(target, payload(n, size))
        n += 1
    """
)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_killing_a_writer_at_random_moments_never_leaves_a_partial_file(tmp_path):
    size = 3_000_000
    target = tmp_path / "journal.bin"
    atomic_write_bytes(target, payload(0, size))
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), OMP_NUM_THREADS="1")
    rng = random.Random(20240611)
    versions_seen = set()
    for _ in range(40):
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(target), str(size)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
        )
        try:
            line = writer.stdout.readline()
            assert line.strip() == b"ready", writer.stderr.read().decode()
            time.sleep(rng.uniform(0.0, 0.04))
        finally:
            writer.send_signal(signal.SIGKILL)
            writer.wait()
            writer.stdout.close()
            writer.stderr.close()
        data = target.read_bytes()
        assert data.startswith(b"PAYLOAD:") and data.endswith(b":END")
        version = int(data[8:16])
        assert data == payload(version, size), f"partial or mixed file after kill (version {version})"
        versions_seen.add(version)
    # whatever the killed writers left behind is only ever temp files, which the cleanup can remove
    remove_stale_temp_files(tmp_path, older_than_s=0)
    assert [p.name for p in tmp_path.iterdir()] == ["journal.bin"]


# --- mask PNGs -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype, top", [(np.uint8, 255), (np.uint16, 65535)])
def test_mask_png_round_trip_keeps_every_id(tmp_path, rng, dtype, top):
    mask = rng.integers(0, top + 1, (37, 53)).astype(dtype)
    path = tmp_path / "mask.png"
    save_mask_png(path, mask)
    loaded = load_mask_png(path)
    assert loaded.dtype == dtype and loaded.shape == (37, 53)
    np.testing.assert_array_equal(loaded, mask)


def test_bool_hand_map_saves_as_zero_one_png(tmp_path):
    hand = np.zeros((5, 6), bool)
    hand[1:3, 2:5] = True
    save_mask_png(tmp_path / "hand.png", hand)
    loaded = load_mask_png(tmp_path / "hand.png")
    assert loaded.dtype == np.uint8
    np.testing.assert_array_equal(loaded, hand.astype(np.uint8))


@pytest.mark.parametrize("bad, message", [
    (np.zeros((4, 4, 3), np.uint8), "2-D"),
    (np.zeros((4, 4), np.float32), "uint8 or uint16"),
    (np.zeros((4, 4), np.int32), "uint8 or uint16"),
])
def test_save_mask_png_refuses_arrays_that_are_not_index_masks(tmp_path, bad, message):
    with pytest.raises(ValueError, match=message):
        save_mask_png(tmp_path / "m.png", bad)
    assert not (tmp_path / "m.png").exists()


def test_load_mask_png_refuses_a_colour_picture(tmp_path):
    ok, encoded = cv2.imencode(".png", np.zeros((4, 4, 3), np.uint8))
    encoded.tofile(str(tmp_path / "photo.png"))
    with pytest.raises(ImageReadError, match="not a label mask"):
        load_mask_png(tmp_path / "photo.png")
