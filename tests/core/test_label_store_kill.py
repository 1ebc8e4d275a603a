"""A slide's label store killed while it saves: what is on disk always reopens, and no chunk is half written."""
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from segstudio.core.label_store import CHUNK, LabelStore

REPO_ROOT = Path(__file__).resolve().parents[2]
SIDE = 6 * CHUNK  # 36 chunks rewritten by every save

# Every round fills the whole area with one value: a chunk on disk is one value throughout unless torn.
WRITER = textwrap.dedent(
    f"""
    import sys
    from segstudio.core.label_store import LabelStore
    store = LabelStore({SIDE}, {SIDE}, sys.argv[1])
    corners = [(0.0, 0.0), ({SIDE}.0, 0.0), ({SIDE}.0, {SIDE}.0), (0.0, {SIDE}.0)]
    n = int(sys.argv[2])
    print("ready", flush=True)
    while True:
        n += 1
        store.paint_polygon(corners, n % 200 + 1)
        store.save()
        print(n, flush=True)
    """
)


def _chunk_values(folder: Path) -> list[int]:
    """Reopen the store as the app would and return each chunk's single value (failing on a torn one)."""
    store = LabelStore(SIDE, SIDE, folder)
    values = []
    for cy in range(SIDE // CHUNK):
        for cx in range(SIDE // CHUNK):
            chunk = store.read(cy * CHUNK, cx * CHUNK, CHUNK, CHUNK)
            assert chunk.min() == chunk.max(), f"chunk ({cy}, {cx}) holds pixels of two saves"
            values.append(int(chunk[0, 0]))
    return values


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_killing_a_slide_autosave_at_random_moments_always_reopens_to_a_saved_state(tmp_path):
    folder = tmp_path / "labels.zarr"
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), OMP_NUM_THREADS="1")
    rng = random.Random(20261126)
    last, mixed = 0, 0
    for _ in range(12):
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(folder), str(last)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        try:
            assert writer.stdout.readline().strip() == b"ready", writer.stderr.read().decode()
            first = int(writer.stdout.readline())  # one save done; kill it somewhere in the following ones
            time.sleep(rng.uniform(0.0, 0.15))
        finally:
            writer.send_signal(signal.SIGKILL)
            writer.wait()
            printed = [int(line) for line in writer.stdout.read().split()]
            writer.stdout.close()
            writer.stderr.close()
        done = max([first, *printed])  # the last save known finished (one more may have finished unsaid)
        versions = {done: done % 200 + 1, done + 1: (done + 1) % 200 + 1, done + 2: (done + 2) % 200 + 1}
        values = set(_chunk_values(folder))
        # Chunks come from the last finished save or the one under way: never older, never anything else.
        found = sorted(n for n, value in versions.items() if value in values)
        assert len(found) == len(values) and len(found) <= 2, (values, done)
        assert found[-1] - found[0] <= 1, (values, done)
        mixed += len(found) == 2
        last = done + 2
    assert mixed, "no kill landed during a save: the test would prove nothing"
    # the reopened store saves on top of whatever the kill left
    store = LabelStore(SIDE, SIDE, folder)
    store.paint_polygon([(0.0, 0.0), (100.0, 0.0), (100.0, 100.0)], 250)
    assert store.save() == 1
    assert LabelStore(SIDE, SIDE, folder).read(10, 90, 1, 1)[0, 0] == 250
    # a killed save can leave a temporary file, never a chunk file under a chunk's name that is not whole
    leftovers = [p for p in folder.rglob("*") if p.is_file() and not p.name.isdigit() and p.name != "zarr.json"]
    assert all(p.name.endswith(".partial") for p in leftovers), leftovers
