"""Fine-tuning with mixed precision on the GPU (in-process and under torchrun with NCCL) and the inspector's
passes on the GPU against the CPU."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from segstudio.engine.inspect import TapInspector
from segstudio.engine.inspect_why import run_request
from segstudio.engine.training.loop import fine_tune
from tests.engine.training.test_loop import active_id, quick_config, save_base_model, write_dataset

REPO = Path(__file__).resolve().parents[2]


def test_fine_tune_on_the_gpu_with_mixed_precision_writes_a_better_version(gpu, tmp_path):
    data = write_dataset(tmp_path / "data", n=16)
    base = save_base_model()
    events = []
    result = fine_tune(quick_config(base, data, steps=80, device="cuda", amp=True), progress=events.append)
    assert result.status == "done" and result.version == "blobs/v2"
    assert result.child_metrics["mean_iou"] > result.parent_metrics["mean_iou"] + 0.2
    started = next(e for e in events if e.kind == "start")
    assert started.device.startswith("CUDA") and started.amp in ("bfloat16", "float16")


def test_torchrun_nccl_fine_tune_writes_one_version(gpu, tmp_path):
    from segstudio.core.paths import user_models_dir

    data = write_dataset(tmp_path / "data", n=16)
    base = save_base_model()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    env.pop("WORLD_SIZE", None)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1",
               "-m", "segstudio", "train", "--model", base, "--data", str(data), "--steps", "20",
               "--batch", "4", "--crop", "48", "--lr", "0.01", "--device", "cuda", "--progress", "jsonl"]
    proc = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    start, done = events[0], events[-1]
    assert start["event"] == "start" and start["world_size"] == 1 and start["backend"] == "nccl", start
    assert start["device"].startswith("CUDA")
    assert done["event"] == "done"
    assert sorted(p.name for p in (user_models_dir() / "blobs").glob("v*.safetensors")) == \
        ["v1.safetensors", "v2.safetensors"]
    assert active_id() in ("blobs/v1", "blobs/v2")


def test_inspector_maps_on_the_gpu_match_the_cpu(gpu, nuclei_model, nuclei_image):
    model, meta = nuclei_model
    image, _ = nuclei_image
    on_cpu = TapInspector(model, meta, device="cpu")
    region = on_cpu.plan(image.shape[:2], (100, 100, 256, 256))
    cpu_maps = on_cpu.inspect(image, region)
    on_gpu = TapInspector(model, meta, device=gpu)
    gpu_maps = on_gpu.inspect(image, region)
    assert "CUDA" in gpu_maps.device
    assert set(gpu_maps.taps) == set(cpu_maps.taps) and len(gpu_maps.taps) >= 4
    for name, tap in cpu_maps.taps.items():
        scale = float(np.abs(tap.mean_map).max()) + 1e-6
        assert np.abs(gpu_maps.taps[name].mean_map - tap.mean_map).max() / scale < 2e-2, name
    np.testing.assert_allclose(gpu_maps.probabilities, cpu_maps.probabilities, atol=2e-2)
    # "Why this pixel" needs gradients on the device.
    why = run_request(on_gpu, image, {"explain": (228, 228)})
    why_cpu = run_request(TapInspector(model.to("cpu"), meta, device="cpu"), image, {"explain": (228, 228)})
    assert type(why).__name__ == type(why_cpu).__name__
    torch.cuda.synchronize(gpu)
