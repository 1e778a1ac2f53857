"""Pretraining loop: its schedules, no decay on biases/norms, accumulation, EMA, NaN stop, checkpoints.

The shared pieces themselves (groups, schedule, logging, rank helpers) are tested in tests/engine.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from saip_bench.engine import (
    DistInfo,
    NonFiniteLossError,
    build_optimizer,
    cosine_ramp,
    lr_at,
    weight_decay_groups,
)
from saip_bench.engine import checkpoint as ckpt
from saip_bench.errors import CheckpointError
from saip_bench.pretrain.engine.optim import ema_update, scaled_lr
from saip_bench.pretrain.engine.trainer import Trainer, TrainSettings


class Toy(nn.Module):
    """The meta-architecture's interface on a linear regression: student, EMA teacher, forward."""

    def __init__(self, nan_at: int | None = None) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.student = nn.ModuleDict({"lin": nn.Linear(4, 1), "norm": nn.LayerNorm(4)})
        self.teacher = copy.deepcopy(self.student).requires_grad_(False)
        self.nan_at = nan_at

    def forward(self, batch, step):
        x, y = batch
        norm = self.student["norm"]
        pred = self.student["lin"](x) * norm.weight.mean() + norm.bias.mean()
        loss = ((pred - y) ** 2).mean()
        if self.nan_at is not None and step >= self.nan_at:
            loss = loss * float("nan")
        return {"loss": loss, "mse": loss.detach()}

    def update_teacher(self, momentum):
        ema_update(self.teacher, self.student, momentum)


def stream(batch_size: int):
    def batches(start: int):
        i = start
        while True:
            g = torch.Generator().manual_seed(1000 + i)
            x = torch.randn(batch_size, 4, generator=g)
            yield x, x.sum(dim=1, keepdim=True)
            i += 1

    return batches


def settings(**kw) -> TrainSettings:
    base = {"total_steps": 6, "base_lr": 5e-2, "warmup_steps": 2, "clip_grad": None, "tensorboard": False}
    return TrainSettings(**{**base, **kw})


def test_lr_schedule_warmup_then_half_cosine():
    # The trainer's arguments: the first warm-up step trains at base_lr / warmup_steps.
    lrs = [lr_at(s, peak=1.0, warmup_steps=4, warmup_offset=1, total_steps=20, floor=0.1) for s in range(20)]
    assert lrs[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert lrs[4] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[4:], lrs[5:], strict=False))
    assert lrs[12] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 8 / 16)))
    assert scaled_lr(2.5e-4, 2048) == pytest.approx(2e-3)


def test_momentum_cosine_over_global_steps():
    ms = [cosine_ramp(s, 100, 0.996, 1.0) for s in range(100)]
    assert ms[0] == pytest.approx(0.996) and ms[-1] == pytest.approx(1.0)
    assert all(a <= b for a, b in zip(ms, ms[1:], strict=False))  # never restarts (the public code's fault)


def test_no_weight_decay_on_biases_and_norms():
    model = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.Linear(4, 2))
    decay, no_decay = weight_decay_groups([model], 0.05)
    assert {id(p) for p in decay["params"]} == {id(model[0].weight), id(model[2].weight)}
    assert len(no_decay["params"]) == 4 and no_decay["weight_decay"] == 0.0
    opt = build_optimizer([decay, no_decay], lr=1e-3, betas=(0.9, 0.95), fused=True)
    assert opt.param_groups[0]["betas"] == (0.9, 0.95)


def test_ema_only_touches_teacher_modules():
    student = nn.ModuleDict({"a": nn.Linear(2, 2), "b": nn.Linear(2, 2)})
    teacher = nn.ModuleDict({"a": copy.deepcopy(student["a"])})
    with torch.no_grad():
        student["a"].weight.add_(1.0)
    before = teacher["a"].weight.clone()
    ema_update(teacher, student, 0.9)
    assert torch.allclose(teacher["a"].weight, 0.9 * before + 0.1 * student["a"].weight)


def test_training_reduces_loss_and_checkpoints(tmp_path):
    model = Toy()
    trainer = Trainer(model, settings(total_steps=30, checkpoint_every=10), run_dir=tmp_path, info=DistInfo())
    result = trainer.fit(stream(8))
    assert result.steps_done == 30
    assert result.last_losses["loss"] < result.first_losses["loss"]
    state = ckpt.load_checkpoint(tmp_path / "checkpoint.pt")
    assert state["step"] == 30 and state["data"]["micro_step"] == 30
    assert set(state) >= {"model", "optimizer", "scaler", "rng", "data", "world_size"}


def test_accumulation_matches_one_large_batch(tmp_path):
    def run(batch, accum, sub):
        model = Toy()
        s = settings(total_steps=3, accum_steps=accum)

        def batches(start):
            big = stream(8)(start // accum)
            for x, y in big:
                for i in range(accum):
                    yield x[i * batch : (i + 1) * batch], y[i * batch : (i + 1) * batch]

        Trainer(model, s, run_dir=tmp_path / sub, info=DistInfo()).fit(batches)
        return model.student["lin"].weight.detach().clone()

    assert torch.allclose(run(8, 1, "a"), run(4, 2, "b"), atol=1e-6)


def test_nan_loss_stops_without_writing_bad_state(tmp_path):
    model = Toy(nan_at=5)
    trainer = Trainer(model, settings(total_steps=10, checkpoint_every=2), run_dir=tmp_path, info=DistInfo())
    with pytest.raises(NonFiniteLossError, match="step 6") as info:
        trainer.fit(stream(8))
    assert "checkpoint.pt" in str(info.value)
    state = ckpt.load_checkpoint(tmp_path / "checkpoint.pt")
    assert state["step"] == 4  # the last good one; nothing from step 5's bad forward
    assert all(torch.isfinite(v).all() for v in state["model"].values())
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_nan_at_first_step_writes_nothing(tmp_path):
    trainer = Trainer(Toy(nan_at=0), settings(checkpoint_every=1), run_dir=tmp_path, info=DistInfo())
    with pytest.raises(NonFiniteLossError, match="no checkpoint was written"):
        trainer.fit(stream(8))
    assert not (tmp_path / "checkpoint.pt").exists()


def test_resume_continues_exactly(tmp_path):
    full = Toy()
    Trainer(full, settings(total_steps=8), run_dir=tmp_path / "full", info=DistInfo()).fit(stream(8))
    # An interrupted run: its data stream dies after 3 steps (the checkpoint of step 3 is on disk).
    first = Trainer(
        Toy(), settings(total_steps=8, checkpoint_every=3), run_dir=tmp_path / "part", info=DistInfo()
    )

    def limited(start):
        it = stream(8)(start)
        for _ in range(3):
            yield next(it)

    with pytest.raises(StopIteration):
        first.fit(limited)
    assert ckpt.load_checkpoint(tmp_path / "part" / "checkpoint.pt")["step"] == 3
    resumed = Toy()
    Trainer(resumed, settings(total_steps=8), run_dir=tmp_path / "part", info=DistInfo()).fit(
        stream(8), resume_from=tmp_path / "part" / "checkpoint.pt"
    )
    for a, b in zip(full.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_unreadable_checkpoint_is_a_checkpoint_error(tmp_path):
    bad = tmp_path / "checkpoint.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="checkpoint.pt"):
        ckpt.load_checkpoint(bad)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        ckpt.load_checkpoint(tmp_path / "missing.pt")
    torch.save({"format_version": 99}, bad)
    with pytest.raises(CheckpointError, match="not a saip-bench training checkpoint"):
        ckpt.load_checkpoint(bad)


def test_lean_mlp_matches_timm_mlp_exactly_in_value_and_gradient():
    from timm.layers import Mlp

    from saip_bench.pretrain.engine.lean_mlp import make_mlps_lean

    torch.manual_seed(0)
    plain = Mlp(8, 32)
    lean = copy.deepcopy(plain)
    assert make_mlps_lean(nn.Sequential(lean)) == 1
    assert make_mlps_lean(nn.Sequential(Mlp(8, 32, drop=0.1))) == 0  # dropout: left alone
    x = torch.randn(3, 5, 8, requires_grad=True)
    x2 = x.detach().clone().requires_grad_()
    y, y2 = plain(x), lean(x2)
    assert torch.equal(y, y2)
    g = torch.randn_like(y)
    y.backward(g)
    y2.backward(g)
    assert torch.allclose(x.grad, x2.grad, atol=1e-6)
    for p, q in zip(plain.parameters(), lean.parameters(), strict=True):
        assert torch.allclose(p.grad, q.grad, atol=1e-5)
    assert plain.state_dict().keys() == lean.state_dict().keys()


def test_fixed_mmap_threshold_is_accepted_on_linux():
    import platform
    import sys

    from saip_bench.pretrain.engine.cpu_memory import set_mmap_threshold

    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        pytest.skip("glibc only")
    assert set_mmap_threshold(32.0) is True  # glibc's own upper default: harmless for the session


def test_steps_per_epoch_drops_incomplete_batches():
    from saip_bench.pretrain.engine.run import steps_per_epoch

    assert steps_per_epoch(160, 8, 1, 1) == 20
    assert steps_per_epoch(160, 8, 2, 4) == 2
    assert steps_per_epoch(5, 8, 1, 1) == 1  # never zero: the data layer reports too few images
