"""AdamW with decay only on weight matrices, the scaled learning rate and the step-indexed schedules.

Every schedule is a pure function of the GLOBAL optimiser step, never of the epoch, so a resumed run (or
one whose epoch length changes) continues on the same curve; the public code restarted the EMA momentum
each epoch.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn


def scaled_lr(blr: float, effective_batch: int) -> float:
    """The linear scaling rule: ``lr = blr x effective_batch / 256``."""
    return blr * effective_batch / 256.0


def param_groups(modules: Iterable[nn.Module], weight_decay: float) -> list[dict]:
    """Split the trainable parameters of ``modules`` into a decayed and an undecayed group.

    Biases, norm weights, tokens and position embeddings (every tensor of rank < 2, plus names ending in
    ``token`` / ``pos_embed``) get no weight decay, as in MAE/DINO.
    """
    decay, no_decay, seen = [], [], set()
    for module in modules:
        for name, param in module.named_parameters():
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))
            if param.ndim < 2 or name.endswith(("token", "pos_embed", ".bias")):
                no_decay.append(param)
            else:
                decay.append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def build_optimizer(
    modules: Iterable[nn.Module], *, lr: float, weight_decay: float, betas: tuple[float, float]
) -> torch.optim.AdamW:
    """AdamW over ``modules`` with no decay on biases and norms (the fused kernel where torch has one)."""
    groups = param_groups(modules, weight_decay)
    try:  # one kernel per step instead of a dozen full passes over every parameter
        return torch.optim.AdamW(groups, lr=lr, betas=tuple(betas), fused=True)
    except (RuntimeError, TypeError):  # a device or dtype the fused kernel does not support
        return torch.optim.AdamW(groups, lr=lr, betas=tuple(betas))


def lr_at(step: int, *, base_lr: float, warmup_steps: int, total_steps: int, min_lr: float = 0.0) -> float:
    """Linear warm-up to ``base_lr`` over ``warmup_steps``, then a half-cosine down to ``min_lr``."""
    if warmup_steps > 0 and step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return min_lr + (base_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


def cosine_ramp(step: int, total_steps: int, start: float, end: float) -> float:
    """Cosine from ``start`` (step 0) to ``end`` (last step); the EMA momentum 0.996 -> 1 uses this."""
    if total_steps <= 1:
        return end
    progress = min(1.0, step / (total_steps - 1))
    return end - (end - start) * 0.5 * (1.0 + math.cos(math.pi * progress))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Write ``lr`` into every parameter group."""
    for group in optimizer.param_groups:
        group["lr"] = lr


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
