"""Exact resume of :func:`saip_bench.engine.fit`: an interrupted run ends bit-identical to an uninterrupted.

The problem has every kind of randomness a fine-tune has: augmentation drawn from torch, numpy and python's
RNG inside ``__getitem__`` (in two DataLoader workers), dropout in the model, a shuffled order, warm-up plus
cosine lr, per-epoch evaluation with ``select: best``.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from saip_bench.engine import EngineConfig, fit, make_train_loader
from saip_bench.engine.sampling import EpochSampler
from saip_bench.errors import Interrupted
from saip_bench.tasks.reid.sampler import PKSampler

EPOCHS, SAMPLES, BATCH = 3, 24, 4
STEPS = EPOCHS * SAMPLES // BATCH


class _Augmented(torch.utils.data.Dataset):
    """Fixed points whose every read adds torch noise, a numpy sign flip and a python-random scale."""

    def __init__(self) -> None:
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(SAMPLES, 6, generator=g)
        self.y = self.x @ torch.linspace(-1, 1, 6) + 0.1 * torch.randn(SAMPLES, generator=g)

    def __len__(self) -> int:
        return SAMPLES

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.x[index] + 0.05 * torch.randn(6)
        if np.random.rand() < 0.5:
            x = x * torch.tensor([1, 1, 1, 1, 1, -1.0])
        return x * random.uniform(0.9, 1.1), self.y[index]


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 1))


def _run(run_dir: Path, *, resume: bool = False, on_step: Any = None, **overrides: Any):
    dataset = _Augmented()
    loader = make_train_loader(dataset, batch_size=BATCH, seed=3, num_workers=2, device="cpu")
    config = EngineConfig(
        epochs=EPOCHS, lr=0.05, warmup_epochs=1, eval_every=1, select="best", log_every=1, **overrides
    )
    calls = [0]

    def step_fn(model: nn.Module, batch: Any) -> dict[str, torch.Tensor]:
        calls[0] += 1
        if on_step is not None:
            on_step(calls[0])
        x, y = batch
        loss = nn.functional.mse_loss(model(x).squeeze(1), y)
        return {"loss": loss, "mse": loss.detach()}

    def evaluate_fn(model: nn.Module) -> dict[str, float]:
        return {"neg_mse": -nn.functional.mse_loss(model(dataset.x).squeeze(1), dataset.y).item()}

    model = _model()
    if resume:  # the weights must come from the checkpoint, not from the same initialisation
        for param in model.parameters():
            nn.init.normal_(param)
    result = fit(
        model, loader, step_fn, config=config, run_dir=run_dir, device="cpu", evaluate_fn=evaluate_fn,
        primary_metric="neg_mse", resume=resume, seed=11,
    )  # fmt: skip
    return model, result


def _assert_identical(a: tuple[nn.Module, Any], b: tuple[nn.Module, Any]) -> None:
    (model_a, result_a), (model_b, result_b) = a, b
    for (name, wa), wb in zip(model_a.state_dict().items(), model_b.state_dict().values(), strict=True):
        assert torch.equal(wa, wb), name
    assert result_a.metrics == result_b.metrics
    assert result_a.history == result_b.history
    assert result_a.selected_epoch == result_b.selected_epoch


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> tuple[nn.Module, Any]:
    return _run(tmp_path_factory.mktemp("full"))


def test_a_run_repeats_bit_for_bit(tmp_path: Path, uninterrupted: tuple[nn.Module, Any]) -> None:
    """The baseline the resume tests compare against must itself be deterministic."""
    _assert_identical(uninterrupted, _run(tmp_path))


def test_sigterm_at_a_random_step_then_resume_is_identical(
    tmp_path: Path, uninterrupted: tuple[nn.Module, Any]
) -> None:
    stop_at = random.SystemRandom().randint(1, STEPS - 1)
    before = signal.getsignal(signal.SIGTERM)

    def kill(call: int) -> None:
        if call == stop_at:  # as Slurm does: every process of the job, the DataLoader workers too
            for worker in multiprocessing.active_children():
                os.kill(worker.pid, signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(Interrupted, match=rf"interrupted at step {stop_at}/{STEPS} .*rerun with --resume"):
        _run(tmp_path, on_step=kill)
    assert signal.getsignal(signal.SIGTERM) is before  # fit put the previous handler back
    ckpt = torch.load(tmp_path / "last.pt", weights_only=True)
    per_epoch = SAMPLES // BATCH
    assert (ckpt["step"], ckpt["epoch"]) == (stop_at, (stop_at - 1) // per_epoch)
    assert ckpt["batch"] == (stop_at - 1) % per_epoch + 1  # the next batch of that epoch
    assert ckpt["elapsed_s"] > 0
    resumed = _run(tmp_path, resume=True)
    _assert_identical(uninterrupted, resumed)
    assert resumed[1].resumed_from_step == stop_at, f"stopped at step {stop_at}"
    assert resumed[1].elapsed_s > ckpt["elapsed_s"]


def test_resume_after_a_crash_mid_epoch_from_a_per_step_checkpoint(
    tmp_path: Path, uninterrupted: tuple[nn.Module, Any]
) -> None:
    """A crash (here an exception; SIGKILL leaves the same files) loses only the step it happened in."""
    crash_at = random.SystemRandom().randint(2, STEPS - 1)

    def crash(call: int) -> None:
        if call == crash_at:
            raise RuntimeError("node lost")

    with pytest.raises(RuntimeError, match="node lost"):
        _run(tmp_path, on_step=crash, checkpoint_every=1)
    assert torch.load(tmp_path / "last.pt", weights_only=True)["step"] == crash_at - 1
    resumed = _run(tmp_path, resume=True, checkpoint_every=1)  # checkpoint_every may differ on resume
    _assert_identical(uninterrupted, resumed)
    assert resumed[1].resumed_from_step == crash_at - 1


def test_the_batches_do_not_depend_on_the_number_of_workers() -> None:
    def batches(workers: int) -> list[torch.Tensor]:
        loader = make_train_loader(_Augmented(), batch_size=BATCH, seed=3, num_workers=workers, device="cpu")
        loader.sampler.set_epoch(1)
        return [x for x, _ in loader]

    torch.manual_seed(0)
    main_rng = torch.get_rng_state()
    zero = batches(0)
    assert torch.equal(torch.get_rng_state(), main_rng)  # augmentation left the main process's RNG alone
    for a, b in zip(zero, batches(2), strict=True):
        assert torch.equal(a, b)


def test_epoch_sampler_order_is_a_function_of_seed_and_epoch_and_starts_mid_epoch() -> None:
    sampler = EpochSampler(10, batch_size=3, seed=5)
    sampler.set_epoch(2)
    whole = list(sampler)
    sampler.set_start(2)
    assert list(sampler) == whole[6:]
    again = EpochSampler(10, batch_size=3, seed=5)
    again.set_epoch(2)
    assert list(again) == whole
    again.set_epoch(3)
    assert [k.index for k in again] != [k.index for k in whole]
    assert sorted(k.index for k in whole) == list(range(10))
    ranks = [EpochSampler(10, batch_size=2, seed=5, num_replicas=2, rank=r) for r in (0, 1)]
    for r in ranks:
        r.set_epoch(2)
    assert sorted(k.index for r in ranks for k in r) == sorted(k.index for k in whole)


def test_pk_sampler_resumes_at_a_batch() -> None:
    pids = [i // 3 for i in range(30)]
    sampler = PKSampler(pids, p=3, k=2, seed=1)
    sampler.set_epoch(4)
    whole = list(sampler)
    sampler.set_start(3)
    assert list(sampler) == whole[3:]
    parts = [PKSampler(pids, p=3, k=2, seed=1, num_replicas=2, rank=r) for r in (0, 1)]
    for part in parts:
        part.set_epoch(4)
        full = list(part)
        part.set_start(1)
        assert list(part) == full[1:]
