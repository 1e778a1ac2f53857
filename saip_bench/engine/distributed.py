"""One code path for 1 CPU, 1 GPU and N processes under ``torchrun``: the rank helpers of every training run.

The process group exists only when torchrun's environment says so; every collective here is a no-op without
one (the public code all-reduced the centre unconditionally and so could not run on one CPU). Pretraining and
every evaluation task ask :func:`is_main` before writing a file, so only rank 0 writes.
"""

from __future__ import annotations

import datetime
import gc
import inspect
import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from saip_bench.errors import SaipError

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
        """More than one process: collectives and DDP are needed."""
        return self.world_size > 1


def is_dist() -> bool:
    """True when a process group is initialised (collectives must run)."""
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """This process's rank in the initialised group, 0 without one."""
    return dist.get_rank() if is_dist() else 0


def world_size() -> int:
    """The number of processes in the initialised group, 1 without one."""
    return dist.get_world_size() if is_dist() else 1


def is_main() -> bool:
    """True on rank 0, and in a single process: the one process that writes files and logs."""
    return rank() == 0


def init_distributed(device: str | torch.device | None = None) -> DistInfo:
    """Initialise from torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK) when present.

    Args:
        device: "cpu", "cuda" or None (CUDA when available). Under torchrun each process takes
            ``cuda:LOCAL_RANK``; the backend is nccl on CUDA and gloo on CPU.

    Raises:
        SaipError: the CUDA device does not exist here (under torchrun: more processes on this machine than
            GPUs, as each takes ``cuda:LOCAL_RANK``).
    """
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    size = int(os.environ.get("WORLD_SIZE", "1"))
    this_rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank if size > 1 else torch.cuda.current_device())
    if device.type == "cuda" and device.index >= torch.cuda.device_count():
        raise SaipError(
            f"{device}: this machine has {torch.cuda.device_count()} CUDA device(s); a process per GPU, so "
            "at most that many processes per node (--nproc-per-node)"
        )
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if size > 1 and not is_dist():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(minutes=30))
        log.debug("rank %d/%d joined the %s group", this_rank, size, backend)
    return DistInfo(rank=this_rank, world_size=size, local_rank=local_rank, device=device)


def cleanup() -> None:
    """Leave the process group, if one was joined.

    The collector runs first. Leaving a gloo group straight after the last collective aborted one rank in
    four of a 2-process run at interpreter exit ("terminate called without an active exception"), after
    every file was written; with the collection 0 in 70. It finds no torch objects to free, and a 50 ms
    sleep cures it as well, so it most likely works as a settling pause: a mitigation of a race inside gloo,
    not a proof that the race is gone.
    """
    if is_dist():
        gc.collect()
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


def broadcast_buffers(module: torch.nn.Module, src: int = 0) -> None:
    """Give every rank ``src``'s buffers (BatchNorm running statistics); a no-op without a process group.

    DDP broadcasts rank 0's buffers at the start of each training forward, so after the last step every rank
    holds the statistics of its own last batch. An evaluation calls this first: every rank then evaluates
    rank 0's model, the one its checkpoints hold, and metrics reduced over ranks stay those of one model.
    """
    if is_dist():
        for buffer in module.buffers():
            dist.broadcast(buffer.data, src=src)


def barrier() -> None:
    """Wait for every rank; a no-op without a process group."""
    if is_dist():
        dist.barrier()


def wrap_ddp(
    module: torch.nn.Module, device: torch.device | str, *, broadcast_buffers: bool = True
) -> torch.nn.Module:
    """DistributedDataParallel around ``module`` under a process group, the module itself otherwise.

    ``find_unused_parameters`` is on: ablations and frozen heads leave parts of a model unused in a step.

    Args:
        module: the model, already on ``device``.
        device: this process's device (its index becomes DDP's ``device_ids`` on CUDA).
        broadcast_buffers: whether rank 0's buffers overwrite the others' every forward; pretraining turns
            it off because its objectives all-reduce their buffers (the CSM centre) themselves, and a
            broadcast would hide a rank that drifted.
    """
    if not is_dist():
        return module
    from torch.nn.parallel import DistributedDataParallel

    device = torch.device(device)
    device_ids = [device.index] if device.type == "cuda" and device.index is not None else None
    sync: dict[str, bool] = {}  # broadcasting is DDP's default
    if not broadcast_buffers:
        # Newer torch calls the switch forward_sync_buffers (and warns on the old name); it still syncs the
        # buffers once at init, which changes nothing here: every rank starts from the same weights.
        newer = "forward_sync_buffers" in inspect.signature(DistributedDataParallel.__init__).parameters
        sync = {"forward_sync_buffers" if newer else "broadcast_buffers": False}
    return DistributedDataParallel(module, device_ids=device_ids, find_unused_parameters=True, **sync)


def unwrap(module: torch.nn.Module) -> torch.nn.Module:
    """The model inside a DistributedDataParallel wrapper (the module itself when not wrapped)."""
    return module.module if isinstance(module, torch.nn.parallel.DistributedDataParallel) else module
