"""Moving a batch to the training device: one helper for pretraining and every task."""

from __future__ import annotations

from typing import Any

import torch


def move_to(batch: Any, device: torch.device | str) -> Any:
    """Move every tensor in a (nested dict / list / tuple) batch to ``device``; other values stay as they are.

    The copy is non-blocking, so pinned host memory overlaps the transfer with compute on CUDA.
    """
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: move_to(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(move_to(v, device) for v in batch)
    return batch
