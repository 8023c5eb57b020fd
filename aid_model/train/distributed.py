"""The process group of a ``torchrun`` launch (or a single process).

torchrun sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT; with WORLD_SIZE
> 1 the group is created here (NCCL on CUDA, gloo on CPU) unless the caller already did.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class DistributedContext:
    """rank, world_size, local_rank; device is where this process computes."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @classmethod
    def from_environment(cls, device: str = "auto") -> DistributedContext:
        """Reads torchrun's environment; initialises the process group when needed."""
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
        target = resolve_device(device, local_rank)
        owns = False
        if world_size > 1 and not dist.is_initialized():
            backend = "nccl" if target.type == "cuda" else "gloo"
            if target.type == "cuda":
                torch.cuda.set_device(target)
            dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
            owns = True
        if dist.is_initialized():
            rank, world_size = dist.get_rank(), dist.get_world_size()
        return cls(rank, world_size, local_rank, target, owns)

    def barrier(self) -> None:
        if self.distributed:
            if self.device.type == "cuda":
                dist.barrier(device_ids=[self.device.index or 0])
            else:
                dist.barrier()

    def mean(self, value: float) -> float:
        """The mean of ``value`` over all processes."""
        if not self.distributed:
            return value
        tensor = torch.tensor([value], dtype=torch.float64, device=self._comm_device)
        dist.all_reduce(tensor)
        return float(tensor.item()) / self.world_size

    def any(self, flag: bool) -> bool:
        """True on every process when ``flag`` is true on one of them."""
        if not self.distributed:
            return flag
        tensor = torch.tensor([1.0 if flag else 0.0], device=self._comm_device)
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return bool(tensor.item() > 0)

    @property
    def _comm_device(self) -> torch.device:
        return self.device if self.device.type == "cuda" else torch.device("cpu")

    def close(self) -> None:
        """Destroys the process group if this context created it."""
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()
            self.owns_group = False


def resolve_device(device: str, local_rank: int = 0) -> torch.device:
    """``auto`` → cuda:LOCAL_RANK when CUDA is available, else cpu; ``cuda`` → cuda:LOCAL_RANK."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        return torch.device("cuda", local_rank)
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise ValueError(
            f"runtime.device {device!r} is not a device (auto, cpu, cuda, cuda:N)") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"runtime.device is {device!r} but CUDA is not available; use cpu")
    return resolved
