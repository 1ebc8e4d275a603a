"""Data-parallel fine-tuning under torchrun: two CPU processes (gloo), one writer, identical replicas."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from segstudio.engine.training.distributed import DistContext, parameter_fingerprint, unwrap_model, wrap_model
from tests.engine.training.test_loop import active_id, save_base_model, write_dataset

REPO = Path(__file__).resolve().parents[3]


def test_single_process_context_is_inert(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    ctx = DistContext.from_env()
    assert not ctx.enabled and ctx.is_main
    device = torch.device("cpu")
    assert ctx.setup(device) == device
    model = torch.nn.Linear(2, 2)
    assert wrap_model(model, ctx, device) is model and unwrap_model(model) is model
    assert ctx.any_flags([False, torch.tensor(True)], device) == [False, True]
    assert ctx.replicas_identical(model, device) is None


def test_a_torchrun_launch_joins_a_group_even_with_one_process(monkeypatch):
    """torchrun with one process per node still takes the distributed path (a one-GPU run is then the
    same program as a cluster's); outside torchrun nothing is joined."""
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.delenv("TORCHELASTIC_RUN_ID", raising=False)
    assert not DistContext.from_env().enabled
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "none")
    ctx = DistContext.from_env()
    assert ctx.enabled and ctx.world_size == 1 and ctx.is_main


def test_fingerprint_sees_any_weight_change():
    torch.manual_seed(0)
    model = torch.nn.Conv2d(1, 2, 3)
    before = parameter_fingerprint(model)
    assert parameter_fingerprint(model) == before
    with torch.no_grad():
        model.weight[0, 0, 0, 0] += 1e-6
    assert parameter_fingerprint(model) != before


@pytest.mark.slow
def test_torchrun_two_cpu_ranks_write_one_version_with_identical_weights(tmp_path):
    from segstudio.core.paths import user_models_dir
    from segstudio.models.library import ModelLibrary

    data = write_dataset(tmp_path / "data", n=16)
    base = save_base_model()
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    env.pop("WORLD_SIZE", None)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               "-m", "segstudio", "train", "--model", base, "--data", str(data), "--steps", "6",
               "--batch", "2", "--crop", "48", "--lr", "0.01", "--device", "cpu", "--workers", "0",
               "--progress", "jsonl"]
    proc = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    kinds = [e["event"] for e in events]
    assert kinds.count("start") == 1 and kinds.count("done") == 1  # rank 1 is silent
    start, done = events[0], events[-1]
    assert start["world_size"] == 2 and start["backend"] == "gloo"
    assert done["world_size"] == 2 and done["replicas_identical"] is True
    assert done["version"] == "blobs/v2"

    files = sorted(p.relative_to(user_models_dir()) for p in user_models_dir().rglob("*") if p.is_file())
    assert [str(f) for f in files] == ["blobs/v1.safetensors", "blobs/v2.safetensors"]
    meta = ModelLibrary().find("blobs/v2").meta
    assert meta.training["settings"]["world_size"] == 2 and meta.parent == base
    assert active_id() in (base, "blobs/v2")
    # The replicas agree because gradients were averaged, not because nothing was trained.
    parent, _ = ModelLibrary().load(base)
    child, _ = ModelLibrary().load("blobs/v2")
    assert parameter_fingerprint(parent) != parameter_fingerprint(child)


@pytest.mark.slow
def test_torchrun_on_a_chunked_dataset_gives_each_rank_its_own_crops_and_writes_one_version(tmp_path):
    from segstudio.core.paths import user_models_dir

    data = write_dataset(tmp_path / "data", n=16)
    base = save_base_model()
    chunk_dir, out = tmp_path / "chunks", tmp_path / "drawn"
    out.mkdir()
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    env.pop("WORLD_SIZE", None)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               str(REPO / "tests" / "engine" / "training" / "ddp_chunked_run.py"), base, str(data), str(chunk_dir),
               str(out)]
    proc = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert all(r["status"] == "done" and r["replicas_identical"] is True for r in ranks)
    assert ranks[0]["version"] == "blobs/v2" and ranks[1]["version"] is None  # only rank 0 writes
    drawn = [r["drawn"] for r in ranks]
    assert all(d["kind"] == "ChunkedImage" for rank in drawn for d in rank)  # read crop by crop, not whole
    assert len(drawn[0]) == len(drawn[1]) == 8 * 2  # eight steps of two crops each
    for epoch in {d["epoch"] for rank in drawn for d in rank}:
        mine, theirs = ({d["i"] for d in rank if d["epoch"] == epoch} for rank in drawn)
        assert mine and theirs and not mine & theirs  # the ranks share the epoch's crops, none twice
    assert len({d["key"] for d in drawn[0]} | {d["key"] for d in drawn[1]}) > 8
    # The chunked copies were made once (rank 0 first, the other rank found them) and nothing is half-made.
    copies = sorted(p.name for p in chunk_dir.iterdir())
    assert len(copies) == 16 and all(name.endswith(".zarr") for name in copies)
    files = sorted(str(p.relative_to(user_models_dir())) for p in user_models_dir().rglob("*") if p.is_file())
    assert files == ["blobs/v1.safetensors", "blobs/v2.safetensors"]
