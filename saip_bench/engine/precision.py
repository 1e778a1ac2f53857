"""Mixed precision for every training run: one precision name, its autocast context and its grad scaler.

``fp32`` trains in full precision; ``bf16`` autocasts to bfloat16 (CUDA, or CPU when asked explicitly);
``fp16`` autocasts to float16 with a :class:`torch.amp.GradScaler` (CUDA only). ``auto`` is bf16 on CUDA
and fp32 on the CPU, where bf16 matmuls are slow on most machines.
"""

from __future__ import annotations

import contextlib

import torch

from saip_bench.errors import ConfigError

PRECISIONS = ("auto", "bf16", "fp16", "fp32")


def resolve_precision(name: str, device: torch.device | str, *, key: str = "train.precision") -> str:
    """``bf16``, ``fp16`` or ``fp32`` for ``name`` on ``device``; a bad name is a :class:`ConfigError`.

    Args:
        name: one of :data:`PRECISIONS`.
        device: where the run trains.
        key: the config key named in the error.
    """
    device = torch.device(device)
    if name == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    if name not in PRECISIONS:
        raise ConfigError(f"{key}={name!r}: expected auto, bf16, fp16 or fp32")
    if name == "fp16" and device.type != "cuda":
        raise ConfigError(f"{key}=fp16 needs CUDA; use bf16 or fp32 on CPU")
    return name


def amp_precision(amp: bool, device: torch.device | str) -> str:
    """The fine-tuning recipes' ``amp`` switch as a precision: bf16 on CUDA when on, fp32 otherwise."""
    return "bf16" if amp and torch.device(device).type == "cuda" else "fp32"


def autocast_context(device: torch.device | str, precision: str) -> contextlib.AbstractContextManager:
    """bf16/fp16 autocast for ``precision`` on ``device``; a no-op for fp32."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=torch.device(device).type, dtype=dtype)


def grad_scaler(device: torch.device | str, precision: str) -> torch.amp.GradScaler:
    """A loss scaler, enabled only for fp16 (bf16 and fp32 have the range to need none)."""
    return torch.amp.GradScaler(torch.device(device).type, enabled=precision == "fp16")
