"""Data parallelism under `torchrun`: process group set-up and the few collectives the runner needs.

`torchrun --nproc_per_node N forgetscope train CONFIG` starts N processes with
RANK/WORLD_SIZE/LOCAL_RANK set; each builds the same plan, takes its slice of
every global batch (stage `batch_size` is the global batch, so it must divide
by N), and DistributedDataParallel averages gradients. Rank 0 alone writes
tokenizer, checkpoints, records and the manifest; the others wait at barriers.
Backend: NCCL when the device is a GPU, gloo on CPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass
class Dist:
    """This process's place in the group (rank 0 of 1 when not distributed)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            import torch.distributed as dist

            dist.barrier()

    def sum_(self, tensor):
        """All-reduce (sum) in place; a no-op in a single process."""
        if self.enabled:
            import torch.distributed as dist

            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def gather_objects(self, obj) -> list:
        """`obj` of every rank, in rank order (a one-item list in a single process)."""
        if not self.enabled:
            return [obj]
        import torch.distributed as dist

        out: list = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def broadcast_object(self, obj):
        """Rank 0's `obj` on every rank."""
        if not self.enabled:
            return obj
        import torch.distributed as dist

        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]


def from_env(device: str) -> Dist:
    """Join the process group torchrun describes in the environment (or a single-process Dist)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    import torch
    import torch.distributed as dist

    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(local)
        dist.init_process_group(backend=backend)
    return Dist(rank, world, local)


def shutdown(dist_info: Dist) -> None:
    if dist_info.enabled:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
