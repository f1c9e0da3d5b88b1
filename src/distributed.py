"""Process-group facts shared by training and scanning under `torchrun` (gloo on CPU, NCCL on CUDA).

PyTorch is imported only when it is needed (a process group, a GPU, or `.device`), so the CPU
inference commands start without it.
"""

from __future__ import annotations

import datetime
import os
import shutil
from functools import cached_property


def gpu_available() -> bool:
    """Whether PyTorch sees a CUDA GPU; PyTorch is only imported where an NVIDIA driver is installed."""
    if not (os.path.exists("/proc/driver/nvidia/version") or shutil.which("nvidia-smi")):
        return False
    import torch

    return torch.cuda.is_available()


def resolve_device(name: str, local_rank: int = 0) -> str:
    """auto: the local rank's GPU where there is one, else the CPU; cuda: the local rank's GPU."""
    if name == "auto":
        name = "cuda" if gpu_available() else "cpu"
    if name == "cuda":
        name = f"cuda:{local_rank}"
    return name


class Distributed:
    """Process-group facts; a single process when not started by torchrun."""

    def __init__(self, device_name: str, timeout: datetime.timedelta | None = None):
        self.world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.device_name = resolve_device(device_name, self.local_rank)
        if self.world_size > 1:
            import torch
            import torch.distributed as dist

            backend = "nccl" if self.device.type == "cuda" else "gloo"
            dist.init_process_group(backend, **({"timeout": timeout} if timeout else {}))
            if self.device.type == "cuda":
                torch.cuda.set_device(self.device)

    @cached_property
    def device(self):
        """The device as a torch.device (imports PyTorch)."""
        import torch

        return torch.device(self.device_name)

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            import torch.distributed as dist

            dist.barrier()

    def broadcast_float(self, value: float) -> float:
        if not self.enabled:
            return value
        import torch
        import torch.distributed as dist

        tensor = torch.tensor([value], dtype=torch.float64)
        dist.broadcast(tensor, src=0)
        return float(tensor.item())

    def close(self) -> None:
        if self.enabled:
            import torch.distributed as dist

            dist.destroy_process_group()
