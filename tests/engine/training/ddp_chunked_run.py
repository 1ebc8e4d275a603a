"""Run under torchrun by test_distributed.py: a fine-tune on a chunked dataset that records, per rank,
which crops it drew (sample index and the image it came from)."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from segstudio.engine.training import data as training_data
from segstudio.engine.training.config import TrainConfig
from segstudio.engine.training.loop import fine_tune


def main(base: str, dataset: str, chunk_dir: str, out: str) -> None:
    drawn = []
    real = training_data.CropDataset.__getitem__

    def recording(self, k):
        epoch, i = divmod(int(k), len(self.index))
        item = self.items[self.index[i]]
        drawn.append({"epoch": epoch, "i": i, "kind": type(item).__name__, "key": item.key})
        return real(self, k)

    training_data.CropDataset.__getitem__ = recording
    config = TrainConfig(base=base, data=[dataset], steps=8, batch_size=2, crop=48, lr=0.01, device="cpu",
                         num_workers=0, augment=False, in_memory_max_pixels=0, chunk_dir=chunk_dir)
    result = fine_tune(config)
    rank = int(os.environ["RANK"])
    Path(out, f"rank{rank}.json").write_text(json.dumps({
        "drawn": drawn, "status": result.status, "version": result.version,
        "replicas_identical": result.replicas_identical}))


if __name__ == "__main__":
    main(*sys.argv[1:])
