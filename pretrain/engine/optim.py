"""Pretraining's own optimisation rules: the linearly scaled learning rate and the EMA teacher update.

Parameter groups, the optimiser and the lr / momentum schedules are the shared engine's
(:mod:`saip_bench.engine.params`, :mod:`saip_bench.engine.schedule`).
"""

from __future__ import annotations

import torch
from torch import nn


def scaled_lr(blr: float, effective_batch: int) -> float:
    """The linear scaling rule: ``lr = blr x effective_batch / 256``."""
    return blr * effective_batch / 256.0


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, momentum: float) -> None:
    """``teacher = m * teacher + (1 - m) * student`` over the parameters the two share by name.

    The teacher holds only the modules it runs, so it is iterated and the student's tensors looked up by name.
    """
    student_params = dict(student.named_parameters())
    t_params, s_params = [], []
    for name, t_param in teacher.named_parameters():
        t_params.append(t_param)
        s_params.append(student_params[name].detach())
    if t_params:
        torch._foreach_lerp_(t_params, s_params, 1.0 - momentum)
