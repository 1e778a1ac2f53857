"""The fine-tuning loop's hooks: logging, evaluation, checkpoints and progress, each in one place.

:func:`saip_bench.engine.fit` only trains: it draws a batch, runs the task's step, steps the optimizer and
calls its hooks. Everything around that is a :class:`Hook`, called after every optimizer step
(:meth:`Hook.after_step`) and after every epoch (:meth:`Hook.after_epoch`), in this order:

1. :class:`EvalHook`: the task's evaluation every ``eval_every`` epochs and after the last one; the
   best-so-far state and, for ``select: best``, ``best.pt``;
2. :class:`LogHook`: a step line every ``log_every`` steps, an ``eval`` line after an evaluation, TensorBoard
   scalars and ``train.log`` (:class:`~saip_bench.engine.logging.TrainLogger`);
3. :class:`ProgressHook`: the CLI's progress callback;
4. :class:`CheckpointHook`: ``last.pt`` every ``checkpoint_every`` steps and at every epoch end, and
   ``history.json``;
5. the caller's own hooks (``fit(hooks=[...])``), e.g. a task that logs its own statistics.

A hook reads and writes the run's live state through :class:`Run`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from saip_bench.engine.checkpoint import rng_state, save_checkpoint
from saip_bench.engine.distributed import all_gather_object, barrier, is_main, unwrap
from saip_bench.engine.logging import TrainLogger
from saip_bench.errors import NonFiniteLossError
from saip_bench.io import atomic_write_json

ProgressFn = Callable[[str, int, int], None]
EvaluateFn = Callable[[nn.Module], dict[str, float]]


@dataclass
class Run:
    """One :func:`~saip_bench.engine.fit` call as its hooks see it.

    Attributes:
        model: the task model (not the DDP wrapper).
        optimizer: its optimizer.
        config: the :class:`~saip_bench.engine.EngineConfig`.
        run_dir: where ``last.pt``, ``best.pt``, ``history.json``, ``train.log`` and ``tb/`` go.
        device: the training device.
        state: what a checkpoint holds besides weights, optimizer and RNG (epoch, next batch, step, history,
            best-so-far, the epoch's running loss sums, elapsed seconds of every attempt).
        total_steps: optimizer steps of the whole run.
        steps_per_epoch: optimizer steps per epoch.
        use_amp: bf16 autocast is on (CUDA).
        step: optimizer steps done.
        epoch: the epoch in progress (0-based).
        batch: the next batch of ``epoch`` (a resumed run starts there).
        losses: the last step's named losses.
        lr: the last step's peak learning rate.
        images_per_s: the last step's throughput (all ranks), when known.
        epoch_sums: the running sum of each loss term over the epoch's steps.
        epoch_count: steps done in the epoch.
        metrics: the last evaluation's metrics (empty before the first).
        evaluated_epoch: the epoch that evaluation belongs to (-1: none yet).
        prior_s: training seconds of earlier attempts (from the checkpoint).
        started: ``time.perf_counter()`` when this attempt started.
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer
    config: Any
    run_dir: Path
    device: torch.device
    state: dict[str, Any]
    total_steps: int
    steps_per_epoch: int
    use_amp: bool = False
    step: int = 0
    epoch: int = 0
    batch: int = 0
    losses: dict[str, float] = field(default_factory=dict)
    lr: float = 0.0
    images_per_s: float | None = None
    epoch_sums: dict[str, float] = field(default_factory=dict)
    epoch_count: int = 0
    metrics: dict[str, float] = field(default_factory=dict)
    evaluated_epoch: int = -1
    prior_s: float = 0.0
    started: float = field(default_factory=time.perf_counter)

    @property
    def last_path(self) -> Path:
        return self.run_dir / "last.pt"

    @property
    def best_path(self) -> Path:
        return self.run_dir / "best.pt"

    @property
    def elapsed_s(self) -> float:
        """Training seconds of every attempt so far."""
        return self.prior_s + time.perf_counter() - self.started


class Hook:
    """A part of the loop around the training step; every method is optional."""

    def after_step(self, run: Run) -> None:
        """After every optimizer step (``run.step`` steps done, ``run.losses`` its losses)."""

    def after_epoch(self, run: Run, record: dict[str, float]) -> None:
        """After every epoch; ``record`` is the epoch's history row (mean losses; metrics once evaluated)."""

    def close(self) -> None:
        """When the loop ends, normally or not."""


class EvalHook(Hook):
    """The task's evaluation every ``eval_every`` epochs and after the last; best-so-far and ``best.pt``."""

    def __init__(
        self, evaluate: Callable[[Run], dict[str, float]], primary_metric: str | None, best: str
    ) -> None:
        self.evaluate = evaluate
        self.primary_metric = primary_metric
        self.best = best

    def after_epoch(self, run: Run, record: dict[str, float]) -> None:
        every, done = run.config.eval_every, run.epoch + 1
        if not (done == run.config.epochs or (every and done % every == 0)):
            return
        run.metrics, run.evaluated_epoch = self.evaluate(run), run.epoch
        record.update(run.metrics)
        if self.primary_metric is None or not _better(
            run.metrics[self.primary_metric], run.state["best_value"], self.best
        ):
            return
        run.state.update(
            best_value=run.metrics[self.primary_metric], best_epoch=done, best_metrics=dict(run.metrics)
        )
        if run.config.select == "best" and is_main():
            save_checkpoint(
                run.best_path,
                {"model": unwrap(run.model).state_dict(), "epoch": done, "metrics": run.metrics},
            )


class LogHook(Hook):
    """Step and evaluation lines, ``train.log`` and TensorBoard (:class:`TrainLogger`)."""

    def __init__(self, logger: TrainLogger) -> None:
        self.logger = logger

    def after_step(self, run: Run) -> None:
        self.logger.step(run.step, run.losses, run.lr, run.images_per_s)

    def after_epoch(self, run: Run, record: dict[str, float]) -> None:
        if run.evaluated_epoch == run.epoch:
            self.logger.metrics(run.step, run.metrics, label=f"epoch {run.epoch + 1}")

    def close(self) -> None:
        self.logger.close()


class ProgressHook(Hook):
    """The caller's ``progress(description, done, total)`` after every step."""

    def __init__(self, progress: ProgressFn) -> None:
        self.progress = progress

    def after_step(self, run: Run) -> None:
        self.progress(f"epoch {run.epoch + 1}/{run.config.epochs}", run.step, run.total_steps)


class CheckpointHook(Hook):
    """``last.pt`` every ``checkpoint_every`` steps and at each epoch end (rank 0), and ``history.json``.

    ``last.pt`` holds every rank's RNG streams, so each continues its own after a resume.
    """

    def __init__(self, config_record: dict[str, Any]) -> None:
        self.config_record = config_record
        self.saved_at: int | None = None

    def after_step(self, run: Run) -> None:
        every = run.config.checkpoint_every
        if every and run.step % every == 0:
            self.save(run, epoch=run.epoch, batch=run.batch)

    def after_epoch(self, run: Run, record: dict[str, float]) -> None:
        run.state["history"].append(record)
        self.save(run, epoch=run.epoch + 1, batch=0)
        if is_main():
            atomic_write_json(run.run_dir / "history.json", run.state["history"])

    def save(self, run: Run, *, epoch: int, batch: int) -> None:
        """Write ``last.pt`` for the run as it is now; a resume continues at batch ``batch`` of ``epoch``
        (the epoch's running loss sums are kept only mid-epoch)."""
        bad = [name for name, param in run.model.named_parameters() if not torch.isfinite(param).all()]
        if bad:  # a finite loss whose update overflowed: never save that state (the ranks' weights agree)
            raise NonFiniteLossError(
                f"{run.run_dir}: weights are not finite after step {run.step} ({', '.join(bad[:3])}"
                f"{', ...' if len(bad) > 3 else ''}); training stopped without saving them. Try a lower "
                "train.lr or a train.grad_clip"
            )
        mid_epoch = batch > 0
        run.state.update(
            epoch=epoch, batch=batch, step=run.step, elapsed_s=run.elapsed_s,
            epoch_sums=dict(run.epoch_sums) if mid_epoch else {},
            epoch_count=run.epoch_count if mid_epoch else 0,
        )  # fmt: skip
        rngs = all_gather_object(rng_state())
        if is_main():
            save_checkpoint(
                run.last_path,
                {**run.state, "model": run.model.state_dict(), "optimizer": run.optimizer.state_dict(),
                 "config": self.config_record, "rng": rngs},
            )  # fmt: skip
        barrier()  # no rank leaves (and no Interrupted ends the job) before the file is complete
        self.saved_at = run.step


def _better(value: float, best: float | None, rule: str) -> bool:
    return best is None or (value > best if rule == "max" else value < best)
