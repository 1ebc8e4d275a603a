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
