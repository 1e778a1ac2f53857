"""Mixed precision for every training run: one precision name, its autocast context and its grad scaler.

``fp32`` trains in full precision; ``bf16`` autocasts to bfloat16 (CUDA, or CPU when asked explicitly);
``fp16`` autocasts to float16 with a :class:`torch.amp.GradScaler` (CUDA only). ``auto`` is bf16 on CUDA
and fp32 on the CPU.

bf16 on the CPU is a supported mode: pretraining's losses track fp32 within 3% of each term over 50 steps
(``tests/pretrain/test_bf16_cpu.py``) and, on a CPU with bf16 matmul units (``avx512_bf16`` or AMX, what
``torch.ops.mkldnn._is_mkldnn_bf16_supported()`` reports), the ViT-Tiny recipe's step runs at 2.0-2.2x the
public code's fp32 step where fp32 runs at 1.25-1.3x (``benchmarks/pretrain_step.py --precision bf16``, 2-core
AMD EPYC). ``auto`` still means fp32 there: CPU runs are the smoke tests, debugging and bit-exact resume
checks, which are defined in fp32, and on CPUs without those units bf16 is emulated and much slower (an AVX2
EPYC: bf16 matmuls at 0.9 GFLOP/s against 142 in fp32); asking for it there logs a warning.
"""

from __future__ import annotations

import contextlib
import logging

import torch

from saip_bench.errors import ConfigError

PRECISIONS = ("auto", "bf16", "fp16", "fp32")

log = logging.getLogger(__name__)


def cpu_has_bf16() -> bool:
    """Whether this CPU has bf16 matmul units (``avx512_bf16`` or AMX) that oneDNN uses."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


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
    if name == "bf16" and device.type == "cpu" and not cpu_has_bf16():
        log.warning(
            "%s=bf16 on a CPU without bf16 matmul units (no avx512_bf16 or AMX): bf16 is emulated and much "
            "slower than fp32 here; use fp32",
            key,
        )
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
