"""The one learning-rate schedule: linear warm-up, then cosine, step or constant, read at a global step.

Every schedule is a pure function of the GLOBAL optimizer step, never of the epoch, so a resumed run (or one
whose epoch length changes) continues on the same curve. Pretraining and fine-tuning call the same
:func:`lr_at`; they differ only in its arguments, which keep each side's historical numbers bit for bit:

- pretraining (MAE/DINO): ``lr_at(step, peak=base_lr, floor=min_lr, warmup_offset=1, ...)``: the first
  warm-up step already trains at ``base_lr / warmup_steps`` and the last one at ``base_lr``;
- fine-tuning: :func:`lr_factor` (``peak=1``, a factor of each group's lr, ``warmup_start`` at step 0).

The EMA teacher's momentum ramp (0.996 -> 1) is the same half-cosine (:func:`cosine_ramp`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from saip_bench.engine.loop import EngineConfig

Schedule = Literal["cosine", "step", "constant"]


def cosine_between(progress: float, start: float, end: float) -> float:
    """Half-cosine from ``start`` (progress 0) to ``end`` (progress >= 1)."""
    return end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def lr_at(
    step: int,
    *,
    peak: float,
    total_steps: int,
    warmup_steps: int = 0,
    warmup_start: float = 0.0,
    warmup_offset: int = 0,
    schedule: Schedule = "cosine",
    floor: float = 0.0,
    milestones: Sequence[float] = (),
    gamma: float = 0.1,
    steps_per_epoch: int = 1,
) -> float:
    """The learning rate (or lr factor, with ``peak=1``) at optimizer step ``step`` (0-based).

    Args:
        step: the global optimizer step about to run.
        peak: the value at the end of the warm-up.
        total_steps: the run's length; cosine reaches ``floor`` there.
        warmup_steps: linear warm-up length (0: none).
        warmup_start: the warm-up's value at ``step + warmup_offset == 0``.
        warmup_offset: 1 makes step 0 the first rung of the ramp (``peak / warmup_steps`` from 0) and the last
            warm-up step reach ``peak``; 0 starts the ramp at ``warmup_start``.
        schedule: after the warm-up, ``"cosine"`` (to ``floor`` at ``total_steps``), ``"step"`` (x ``gamma``
            at each milestone) or ``"constant"``.
        floor: the cosine's final value.
        milestones: step schedule: epochs (of ``steps_per_epoch`` steps) at which the value is x ``gamma``.
        gamma: step schedule factor.
        steps_per_epoch: converts the step to the epoch the milestones count.
    """
    if warmup_steps > 0 and step < warmup_steps:
        return warmup_start + (peak - warmup_start) * (step + warmup_offset) / warmup_steps
    if schedule == "constant":
        return peak
    if schedule == "step":
        epoch = step // max(1, steps_per_epoch)
        return peak * gamma ** sum(epoch >= m for m in milestones)
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return cosine_between(progress, peak, floor)


def lr_factor(step: int, *, total_steps: int, steps_per_epoch: int, config: EngineConfig) -> float:
    """Multiplier of the peak lr at fine-tuning step ``step`` (0-based): an :class:`EngineConfig`'s schedule.

    The warm-up is ``warmup_epochs`` epochs (rounded to steps) from ``warmup_start_factor`` to 1.
    """
    return lr_at(
        step,
        peak=1.0,
        total_steps=total_steps,
        warmup_steps=int(round(config.warmup_epochs * steps_per_epoch)),
        warmup_start=config.warmup_start_factor,
        schedule=config.schedule,
        floor=config.min_lr_ratio,
        milestones=config.milestones,
        gamma=config.gamma,
        steps_per_epoch=steps_per_epoch,
    )


def cosine_ramp(step: int, total_steps: int, start: float, end: float) -> float:
    """Cosine from ``start`` (step 0) to ``end`` (last step); the EMA momentum 0.996 -> 1 uses this."""
    if total_steps <= 1:
        return end
    return cosine_between(step / (total_steps - 1), start, end)
