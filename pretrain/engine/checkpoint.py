"""Atomic full training checkpoints and the RNG state they carry, so ``--resume`` continues exactly.

A checkpoint is one ``torch.save`` file written to a temporary name and renamed: a run killed with SIGKILL
mid-write leaves the previous checkpoint intact. It holds everything the next step depends on: student,
teacher, heads, optimiser, grad scaler, the global step (every schedule is a function of it), objective
buffers such as the DINO centre, the RNG states of python/numpy/torch, and the data position.
"""

from __future__ import annotations

import io
import logging
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from saip_bench.errors import CheckpointError
from saip_bench.io import atomic_write_bytes

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "checkpoint.pt"
FORMAT_VERSION = 1


def rng_state() -> dict[str, Any]:
    """The global RNG states of python, numpy and torch (CPU and every CUDA device)."""
    # Only tensors and plain Python values, so the checkpoint loads with weights_only=True.
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": [name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    random.setstate(state["python"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write ``state`` (plus the format version) atomically to ``path``."""
    buffer = io.BytesIO()
    torch.save({"format_version": FORMAT_VERSION, **state}, buffer)
    atomic_write_bytes(path, buffer.getvalue())
    log.debug("checkpoint written: %s (step %s)", path, state.get("step"))


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint this engine wrote; a missing or foreign file is a :class:`CheckpointError`.

    Loaded with ``weights_only=True``: the checkpoint holds only tensors and plain values, so a file planted
    in a run directory cannot run code when a run resumes from it.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no checkpoint to resume from")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a truncated or foreign file: one line naming it
        raise CheckpointError(f"{path}: not a readable training checkpoint ({type(err).__name__})") from None
    if not isinstance(state, dict) or state.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: not a saip-bench training checkpoint (format {FORMAT_VERSION})")
    return state


def checkpoint_path(run_dir: str | Path) -> Path:
    """Where a run keeps its latest full checkpoint."""
    return Path(run_dir) / CHECKPOINT_NAME
