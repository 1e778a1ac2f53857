"""The one lr schedule reproduces both former ones bit for bit (pretraining ``lr_at``/``cosine_ramp``, the
fine-tuning engine's ``lr_factor``), and its warm-up / cosine / step shapes."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from saip_bench.engine import EngineConfig, cosine_ramp, lr_at, lr_factor


# --- the former implementations, verbatim (main 222d75c), as references --------------------------------
def old_pretrain_lr_at(step, *, base_lr, warmup_steps, total_steps, min_lr=0.0):
    if warmup_steps > 0 and step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return min_lr + (base_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


def old_cosine_ramp(step, total_steps, start, end):
    if total_steps <= 1:
        return end
    progress = min(1.0, step / (total_steps - 1))
    return end - (end - start) * 0.5 * (1.0 + math.cos(math.pi * progress))


def old_lr_factor(step, *, total_steps, steps_per_epoch, config):
    warmup = int(round(config.warmup_epochs * steps_per_epoch))
    if step < warmup:
        start = config.warmup_start_factor
        return start + (1.0 - start) * step / warmup
    if config.schedule == "constant":
        return 1.0
    if config.schedule == "step":
        epoch = step // max(1, steps_per_epoch)
        return config.gamma ** sum(epoch >= m for m in config.milestones)
    progress = (step - warmup) / max(1, total_steps - warmup)
    floor = config.min_lr_ratio
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


# ---------------------------------------------------------------------------------------------------------
def test_pretraining_schedule_is_bit_identical() -> None:
    rng = random.Random(0)
    cases = [(5e-4, 5, 20, 0.0), (1.5e-4, 40, 1000, 1e-6), (1e-3, 0, 7, 0.0), (2.5e-3, 1, 2, 1e-5)]
    cases += [(rng.uniform(1e-5, 1e-2), rng.randint(0, 50), rng.randint(51, 400), rng.uniform(0, 1e-5))]
    for base_lr, warmup, total, min_lr in cases:
        for step in range(total + 2):
            new = lr_at(
                step, peak=base_lr, total_steps=total, warmup_steps=warmup, warmup_offset=1, floor=min_lr
            )
            old = old_pretrain_lr_at(
                step, base_lr=base_lr, warmup_steps=warmup, total_steps=total, min_lr=min_lr
            )
            assert new == old, (base_lr, warmup, total, min_lr, step)


def test_ema_momentum_ramp_is_bit_identical() -> None:
    for total, start, end in itertools.product((1, 2, 30, 1001), (0.996, 0.99, 0.9995), (1.0, 0.9999)):
        for step in range(total + 1):
            assert cosine_ramp(step, total, start, end) == old_cosine_ramp(step, total, start, end)


@pytest.mark.parametrize(
    "config",
    [
        EngineConfig(epochs=10, warmup_epochs=2, warmup_start_factor=0.1, schedule="cosine"),
        EngineConfig(epochs=7, warmup_epochs=0.5, warmup_start_factor=0.01, min_lr_ratio=0.013),
        EngineConfig(epochs=5, warmup_epochs=0.0, schedule="cosine", min_lr_ratio=0.1),
        EngineConfig(epochs=12, warmup_epochs=1, schedule="step", milestones=(4, 8), gamma=0.1),
        EngineConfig(epochs=12, warmup_epochs=0.3, schedule="step", milestones=(3, 6, 9), gamma=0.5),
        EngineConfig(epochs=3, warmup_epochs=1, warmup_start_factor=0.25, schedule="constant"),
    ],
)
@pytest.mark.parametrize("steps_per_epoch", [1, 3, 17])
def test_fine_tuning_schedule_is_bit_identical(config: EngineConfig, steps_per_epoch: int) -> None:
    total = config.epochs * steps_per_epoch
    kw = dict(total_steps=total, steps_per_epoch=steps_per_epoch, config=config)
    for step in range(total + 1):
        assert lr_factor(step, **kw) == old_lr_factor(step, **kw), step


def test_the_two_warm_ups_differ_only_by_their_offset() -> None:
    # Pretraining: step 0 is the first rung (peak / 4), the last warm-up step reaches the peak.
    ramp = [lr_at(s, peak=1.0, total_steps=10, warmup_steps=4, warmup_offset=1) for s in range(4)]
    assert ramp == [0.25, 0.5, 0.75, 1.0]
    # Fine-tuning: step 0 starts at warmup_start and the peak arrives with the first step after warm-up.
    ramp = [lr_at(s, peak=1.0, total_steps=10, warmup_steps=4, warmup_start=0.2) for s in range(5)]
    assert ramp == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])


def test_cosine_step_and_constant_shapes() -> None:
    cos = [lr_at(s, peak=2.0, total_steps=10, floor=0.5) for s in range(12)]
    assert cos[0] == 2.0 and cos[10] == pytest.approx(0.5) and cos[11] == pytest.approx(0.5)
    assert all(a >= b for a, b in itertools.pairwise(cos))
    assert cos[5] == pytest.approx(0.5 + 1.5 * 0.5)
    kw = dict(peak=1.0, total_steps=40, schedule="step", milestones=(2, 3), steps_per_epoch=10)
    assert [lr_at(s, **kw) for s in (0, 19, 20, 35)] == pytest.approx([1.0, 1.0, 0.1, 0.01])
    assert lr_at(99, peak=3.0, total_steps=10, schedule="constant") == 3.0
