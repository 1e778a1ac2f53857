"""Atomic training checkpoints that load without unpickling code, and the RNG state they carry.

A checkpoint is one ``torch.save`` file written to a temporary name and renamed: a run killed with SIGKILL
mid-write leaves the previous checkpoint intact. It is read with ``weights_only=True``, so it may hold only
tensors and plain Python values, and a file planted in a run directory cannot run code when a run resumes
from it. :func:`rng_state` / :func:`set_rng_state` capture every global random stream a training step draws
from (python ``random``, numpy, torch CPU and CUDA), which is what lets a resumed run continue exactly.
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

#: Written into every checkpoint; :func:`load_checkpoint` refuses another version with one line.
FORMAT_VERSION = 1


def rng_state() -> dict[str, Any]:
    """The global RNG states of python, numpy and torch (CPU, and every CUDA device once CUDA is in use).

    Only tensors and plain Python values, so a checkpoint holding it loads with ``weights_only=True``.
    """
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": [name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned (the CUDA streams too, where they were captured)."""
    random.setstate(state["python"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write ``state`` (plus the format version) atomically to ``path``.

    The caller decides which rank writes (usually ``if is_main(): save_checkpoint(...)``).
    """
    buffer = io.BytesIO()
    torch.save({"format_version": FORMAT_VERSION, **state}, buffer)
    atomic_write_bytes(path, buffer.getvalue())
    log.debug("checkpoint written: %s (step %s)", path, state.get("step"))


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint :func:`save_checkpoint` wrote, on the CPU.

    Raises:
        CheckpointError: the file is missing, unreadable, pickles code, or is not this format; one line
            naming the file.
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
