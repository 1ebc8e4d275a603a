"""Data-parallel fine-tuning under torchrun.

`torchrun --nproc_per_node=N -m segstudio train ...` starts N copies of the same command with RANK,
WORLD_SIZE and LOCAL_RANK in the environment. `fine_tune` asks `DistContext.from_env()` which copy it is:
launched by torchrun (even with one process, so a one-GPU run takes the same path as a cluster's) or
with WORLD_SIZE > 1 it joins a process group (NCCL on CUDA, gloo on CPU), wraps the model in
DistributedDataParallel and shards the crops with a DistributedSampler. Only rank 0 validates, writes the
new version and reports progress; the other ranks train silently and wait for it.

Every decision that makes a rank leave the training loop (cancel, a non-finite loss) is agreed on with an
all-reduce at the same step on every rank, because a rank that stops alone leaves the others blocked in
the next gradient all-reduce.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None
    owns_group: bool = False  # True when this context created the process group and must destroy it
    launched: bool = False  # started by torchrun (TORCHELASTIC_RUN_ID is set), whatever the world size

    @property
    def enabled(self) -> bool:
        return self.world_size > 1 or self.launched

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls) -> DistContext:
        world = int(os.environ.get("WORLD_SIZE", "1") or 1)
        launched = bool(os.environ.get("TORCHELASTIC_RUN_ID"))
        if world <= 1 and not launched:
            return cls()
        return cls(
            rank=int(os.environ.get("RANK", "0")),
            world_size=max(1, world),
            local_rank=int(os.environ.get("LOCAL_RANK", "0")),
            launched=launched,
        )

    # --- lifecycle ---------------------------------------------------------------------------
    def setup(self, device: torch.device) -> torch.device:
        """Join the process group; returns the device this rank trains on (one GPU per local rank)."""
        if not self.enabled:
            return device
        if device.type == "cuda":
            device = torch.device("cuda", self.local_rank % max(1, torch.cuda.device_count()))
            torch.cuda.set_device(device)
            self.backend = "nccl"
        else:
            self.backend = "gloo"
        if not dist.is_initialized():
            kwargs = {"backend": self.backend}
            if self.backend == "nccl":
                kwargs["device_id"] = device
            dist.init_process_group(**kwargs)
            self.owns_group = True
        return device

    def teardown(self) -> None:
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()
        self.owns_group = False

    # --- collectives (all no-ops in a single process) --------------------------------------------
    def any_flags(self, flags: list, device: torch.device) -> list[bool]:
        """For each flag (bool or 0-d bool tensor), True on every rank if it is True on any rank.

        One all-reduce (and one device sync) for all of them, so it can run at every step.
        """
        if not self.enabled:
            return [bool(f) for f in flags]
        t = torch.stack([torch.as_tensor(f, device=device).to(torch.float32).reshape(()) for f in flags])
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return [v > 0 for v in t.tolist()]

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def replicas_identical(self, model: torch.nn.Module, device: torch.device) -> bool | None:
        """Whether every rank ends with bit-identical parameters (None in a single process).

        Only parameters are compared: DDP keeps them in step, while BatchNorm running statistics are
        updated from each rank's own last batch and legitimately differ (rank 0's are the ones saved).
        """
        if not self.enabled:
            return None
        digest = parameter_fingerprint(model)
        mine = torch.tensor([digest], dtype=torch.int64, device=device)
        gathered = [torch.zeros_like(mine) for _ in range(self.world_size)]
        dist.all_gather(gathered, mine)
        return all(int(g.item()) == digest for g in gathered)


def parameter_fingerprint(model: torch.nn.Module) -> int:
    """A 63-bit hash of the exact bytes of every parameter, in name order."""
    h = hashlib.sha256()
    for name, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
        h.update(name.encode())
        h.update(p.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return int.from_bytes(h.digest()[:8], "little") & 0x7FFF_FFFF_FFFF_FFFF


def wrap_model(model: torch.nn.Module, ctx: DistContext, device: torch.device) -> torch.nn.Module:
    """DistributedDataParallel around `model` when running with more than one process."""
    if not ctx.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    from torch.nn.parallel import DistributedDataParallel

    return model.module if isinstance(model, DistributedDataParallel) else model
