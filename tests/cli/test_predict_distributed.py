"""`torchrun -m segstudio predict SLIDES...`: the ranks share the slides, each predicted exactly once."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from segstudio.core.run_marks import MARKS_FILE
from segstudio.synth.slides import TissuePatch, write_pyramid_ome
from tests.cli.test_predict_slides import model_file  # noqa: F401  (fixture)

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_two_gloo_ranks_predict_four_slides_once_each_and_a_rerun_skips_them(tmp_path, model_file):  # noqa: F811
    slides = [write_pyramid_ome(tmp_path / f"case{i}.ome.tif", 700, 900, levels=2, factor=4, tile=256,
                                patches=[TissuePatch(350, 300 + 60 * i, 150, 150)]) for i in range(4)]
    out = tmp_path / "labels"
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    env.pop("WORLD_SIZE", None)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               "-m", "segstudio", "predict", *map(str, slides), "--model", str(model_file), "--out", str(out),
               "--tile", "128", "--device", "cpu"]
    proc = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    for i in range(4):
        assert proc.stderr.count(f"case{i}.ome.tif -> ") == 1, proc.stderr[-4000:]
        marks = json.loads((out / f"case{i}.labels.zarr" / MARKS_FILE).read_text())
        assert marks["complete"]

    again = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-4000:]
    assert again.stderr.count("already predicted") == 4 and " -> " not in again.stderr
