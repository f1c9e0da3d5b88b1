"""Process-group facts shared by training and scanning under `torchrun` (gloo on CPU, NCCL on CUDA)."""

from __future__ import annotations

import datetime
import os

import torch
import torch.distributed as dist


def resolve_device(name: str, local_rank: int) -> torch.device:
    """auto: the local rank's GPU where there is one, else the CPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        name = f"cuda:{local_rank}"
    return torch.device(name)


class Distributed:
    """Process-group facts; a single process when not started by torchrun."""

    def __init__(self, device_name: str, timeout: datetime.timedelta | None = None):
        self.world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.device = resolve_device(device_name, self.local_rank)
        if self.world_size > 1:
            backend = "nccl" if self.device.type == "cuda" else "gloo"
            dist.init_process_group(backend, **({"timeout": timeout} if timeout else {}))
            if self.device.type == "cuda":
                torch.cuda.set_device(self.device)

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def broadcast_float(self, value: float) -> float:
        if not self.enabled:
            return value
        tensor = torch.tensor([value], dtype=torch.float64)
        dist.broadcast(tensor, src=0)
        return float(tensor.item())

    def close(self) -> None:
        if self.enabled:
            dist.destroy_process_group()
