"""One code path for 1 CPU, 1 GPU and N processes under ``torchrun``.

The process group exists only when torchrun's environment says so; every collective here is a no-op without
one (the public code all-reduced the centre unconditionally and so could not run on one CPU).
"""

from __future__ import annotations

import datetime
import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits: its rank, the world size, and the device it computes on."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        """Rank 0 writes every file; the others only compute."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def is_dist() -> bool:
    """True when a process group is initialised (collectives must run)."""
    return dist.is_available() and dist.is_initialized()


def init_distributed(device: str | torch.device | None = None) -> DistInfo:
    """Initialise from torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK) when present.

    Args:
        device: "cpu", "cuda" or None (CUDA when available). Under torchrun each process takes
            ``cuda:LOCAL_RANK``; the backend is nccl on CUDA and gloo on CPU.
    """
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank if world_size > 1 else torch.cuda.current_device())
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world_size > 1 and not is_dist():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(minutes=30))
        log.debug("rank %d/%d joined the %s group", rank, world_size, backend)
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank, device=device)


def cleanup() -> None:
    """Leave the process group, if one was joined."""
    if is_dist():
        dist.destroy_process_group()


def all_reduce_mean(tensor: torch.Tensor) -> torch.Tensor:
    """Average ``tensor`` over ranks in place; the tensor unchanged without a process group."""
    if is_dist():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        tensor /= dist.get_world_size()
    return tensor


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over ranks in place; unchanged without a process group."""
    if is_dist():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_gather_tensor(tensor: torch.Tensor) -> list[torch.Tensor]:
    """Every rank's copy of ``tensor`` (a list of one without a process group)."""
    if not is_dist():
        return [tensor]
    out = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    dist.all_gather(out, tensor)
    return out


def all_gather_object(obj: object) -> list[object]:
    """Every rank's ``obj`` (a list of one without a process group)."""
    if not is_dist():
        return [obj]
    out: list[object] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def barrier() -> None:
    if is_dist():
        dist.barrier()


def broadcast_object(obj: object, src: int = 0) -> object:
    """Rank ``src``'s ``obj`` on every rank (the object itself without a process group)."""
    if not is_dist():
        return obj
    holder = [obj]
    dist.broadcast_object_list(holder, src=src)
    return holder[0]


def wrap_ddp(module: torch.nn.Module, info: DistInfo) -> torch.nn.Module:
    """DistributedDataParallel around ``module`` under a process group, the module itself otherwise."""
    if not info.distributed:
        return module
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [info.device.index] if info.device.type == "cuda" else None
    # Ablations leave parts of the student unused (e.g. blocks after the intermediate one for CSS alone).
    # Buffers (the CSM centre) are not broadcast from rank 0: the objective all-reduces them itself, and a
    # broadcast would hide a rank that drifted.
    return DistributedDataParallel(
        module, device_ids=device_ids, find_unused_parameters=True, broadcast_buffers=False
    )
