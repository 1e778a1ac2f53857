"""The one non-finite-loss check: every rank agrees, then one :class:`NonFiniteLossError` line.

A NaN or infinite loss is raised before ``backward``/``step`` touch the weights, so no bad state is saved.
Under a process group the ranks all-reduce a flag first: a rank raising alone would leave the others hanging
in their next collective.
"""

from __future__ import annotations

from pathlib import Path

import torch

from saip_bench.engine.distributed import all_reduce_sum
from saip_bench.errors import NonFiniteLossError

__all__ = ["NonFiniteLossError", "check_finite"]


def check_finite(
    losses: dict[str, torch.Tensor],
    *,
    run_dir: str | Path,
    step: int,
    key: str = "loss",
    advice: str = "",
) -> None:
    """Raise :class:`NonFiniteLossError` when ``losses[key]`` is NaN or infinite on any rank.

    Every rank must call it at the same step (it is a collective under a process group).

    Args:
        losses: the step's named loss terms (the total under ``key``); all are named in the message.
        run_dir: the run directory, named first in the message.
        step: the 1-based step that produced the loss.
        key: which term is the total the optimizer steps on.
        advice: appended after ``"; "`` (what to try, where the last good checkpoint is).
    """
    loss = losses[key].detach()
    bad = torch.tensor([0.0 if torch.isfinite(loss).all() else 1.0], device=loss.device)
    all_reduce_sum(bad)
    if bad.item() > 0:
        terms = ", ".join(f"{k}={float(v.detach()):.4g}" for k, v in losses.items())
        message = f"{run_dir}: loss is not finite at step {step} ({terms}); training stopped without saving "
        message += "the bad state"
        raise NonFiniteLossError(f"{message}; {advice}" if advice else message)
