"""The pretraining loop: accumulation, EMA teacher, data position; the rest is the shared engine's.

The loop knows nothing of the method: it drives any module with the meta-architecture's interface
(``forward(batch, step) -> {"loss": total, <term>: value}``, ``student``, ``update_teacher(momentum)``).
Parameter groups, the lr schedule, mixed precision, the non-finite check, rank helpers, checkpoints and the
step log come from :mod:`saip_bench.engine`, which the fine-tuning loop uses too. Every schedule is read at
the GLOBAL optimiser step, and a checkpoint written at a step boundary holds all the state the next step
reads, so an interrupted run resumed from it produces the same weights bit for bit (CPU, deterministic mode).

The EMA teacher moves once per optimiser step (``ema_every="optimizer_step"``) or, as the public SAIPv1 code
does, after every micro-batch's backward (``"micro_batch"``): micro-batch ``k`` of step ``s`` then uses the
momentum cosine at the global micro-batch ``s * accum_steps + k`` of ``total_steps * accum_steps``, the
per-iteration schedule the public code builds (its loop indexes it with the iteration *within* the epoch, so
its momentum restarts every epoch and never leaves ~0.996; this one runs over the whole training). The last
micro-batch's update comes after the optimiser step, the others see the student of the step before, and the
next micro-batch's teacher forward sees the moved teacher: the public order.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from saip_bench.engine import distributed as D
from saip_bench.engine.batch import move_to
from saip_bench.engine.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from saip_bench.engine.finite import check_finite
from saip_bench.engine.logging import TrainLogger
from saip_bench.engine.params import build_optimizer, weight_decay_groups
from saip_bench.engine.precision import autocast_context, grad_scaler
from saip_bench.engine.schedule import cosine_ramp, lr_at
from saip_bench.engine.signals import StopRequest
from saip_bench.errors import CheckpointError, ConfigError, Interrupted, NonFiniteLossError
from saip_bench.io import atomic_write_json

log = logging.getLogger(__name__)

#: When the EMA teacher moves: once per optimiser step, or after every micro-batch (the public code).
EMA_EVERY = ("optimizer_step", "micro_batch")

#: Where a run keeps its latest full checkpoint, inside the run directory.
CHECKPOINT_NAME = "checkpoint.pt"


def checkpoint_path(run_dir: str | Path) -> Path:
    """Where a run keeps its latest full checkpoint."""
    return Path(run_dir) / CHECKPOINT_NAME


@dataclass
class TrainSettings:
    """The loop's plain settings (the config layer fills them)."""

    total_steps: int
    base_lr: float
    warmup_steps: int = 0
    min_lr: float = 0.0
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.95)
    accum_steps: int = 1
    clip_grad: float | None = 3.0
    precision: str = "fp32"  # fp32 | bf16 | fp16
    ema_start: float = 0.996
    ema_end: float = 1.0
    ema_every: str = "optimizer_step"  # optimizer_step | micro_batch (the public code's)
    wd_exempt: str = "tokens"  # tokens | public: the weight-decay exemption rule (engine.params)
    checkpoint_every: int = 0  # 0: only at the end
    log_every: int = 10
    images_per_micro_batch: int = 1  # global (all ranks) images per micro-step, for throughput
    record_digests: bool = False  # per-step per-rank weight checksums in RUN/digests.jsonl (tests)
    tensorboard: bool = True


@dataclass
class StepInfo:
    """What the progress callback gets after each optimiser step."""

    step: int  # steps done
    total_steps: int
    losses: dict[str, float]
    lr: float
    momentum: float
    images_per_s: float


@dataclass
class TrainResult:
    steps_done: int
    first_losses: dict[str, float] = field(default_factory=dict)
    last_losses: dict[str, float] = field(default_factory=dict)
    resumed_from: int | None = None
    seconds: float = 0.0


def weight_checksum(module: nn.Module) -> float:
    """A float64 sum of every parameter: equal on every rank iff the replicas agree (for the tests)."""
    with torch.no_grad():
        return float(sum(p.detach().double().sum() for p in module.parameters()))


class Trainer:
    """Runs ``settings.total_steps`` optimiser steps of ``model`` on a stream of micro-batches."""

    def __init__(
        self,
        model: nn.Module,
        settings: TrainSettings,
        *,
        run_dir: str | Path,
        info: D.DistInfo,
        extra_state: dict[str, Any] | None = None,
    ) -> None:
        self.model = model  # the meta-architecture (not wrapped)
        self.settings = settings
        self.run_dir = Path(run_dir)
        self.info = info
        self.extra_state = extra_state or {}
        # The objectives all-reduce their buffers (the CSM centre) themselves: a broadcast would hide a rank
        # that drifted.
        self.engine = D.wrap_ddp(model, info.device, broadcast_buffers=False)
        if settings.ema_every not in EMA_EVERY:
            valid = ", ".join(EMA_EVERY)
            raise ConfigError(f"train.ema_every={settings.ema_every!r}: expected one of {valid}")
        self.optimizer = build_optimizer(
            weight_decay_groups([model.student], settings.weight_decay, exempt=settings.wd_exempt),
            lr=settings.base_lr,
            betas=settings.betas,
            fused=True,
        )
        self.scaler = grad_scaler(info.device, settings.precision)
        self.step = 0

    # ----------------------------------------------------------------- state
    def state_dict(self, micro_step: int, rng_states: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "step": self.step,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": rng_states,  # one per rank
            "world_size": self.info.world_size,
            "data": {"micro_step": micro_step},
            **self.extra_state,
        }

    def resume(self, path: str | Path) -> int:
        """Load a full checkpoint; returns the micro-step (data position) to continue from."""
        state = load_checkpoint(path)
        if self.info.is_main:  # a run killed mid-write leaves its temporary folder beside the checkpoint
            for stale in Path(path).parent.glob(f".{Path(path).name}.*.tmp"):
                shutil.rmtree(stale, ignore_errors=True)
        try:
            self.model.load_state_dict(state["model"], strict=True)
        except RuntimeError as err:
            first = str(err).strip().splitlines()[0]
            raise CheckpointError(f"{path}: does not fit this run's model ({first})") from None
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        rng = state["rng"]
        if state.get("world_size") == self.info.world_size:
            set_rng_state(rng[self.info.rank])
        else:
            # Another world size: the data position still holds, but the random streams cannot match.
            log.warning(
                "%s was written by %s processes, not %d: random streams restart",
                path,
                state.get("world_size"),
                self.info.world_size,
            )
            torch.manual_seed(int(torch.initial_seed()) + 1000003 * self.step + self.info.rank)
        self.step = int(state["step"])
        return int(state["data"]["micro_step"])

    def _save(self, micro_step: int) -> None:
        # A finite loss whose update overflowed leaves inf/NaN weights: never save them (ranks agree on them).
        bad = [n for n, p in self.model.student.named_parameters() if not torch.isfinite(p).all()]
        if bad:
            raise NonFiniteLossError(
                f"{self.run_dir}: weights are not finite after step {self.step} ({', '.join(bad[:3])}); "
                "training stopped without saving them. Try a lower train.blr or train.clip_grad"
            )
        # Every rank has the same weights; only rank 0 writes, with every rank's RNG states.
        rng_states = D.all_gather_object(rng_state())
        if self.info.is_main:
            save_checkpoint(checkpoint_path(self.run_dir), self.state_dict(micro_step, rng_states))
            atomic_write_json(
                self.run_dir / "train_state.json", {"step": self.step, "micro_step": micro_step}
            )
        D.barrier()

    # --------------------------------------------------------------- logging
    def _record_digest(self) -> None:
        import json

        local = torch.tensor([weight_checksum(self.model.student)], dtype=torch.float64)
        extra = [float(v) for v in getattr(self.model, "digest_extras", lambda: [])()]
        local = torch.cat([local, torch.tensor(extra, dtype=torch.float64)])
        gathered = D.all_gather_tensor(local.to(self.info.device))
        if self.info.is_main:
            row = {"step": self.step, "ranks": [g.cpu().tolist() for g in gathered]}
            with open(self.run_dir / "digests.jsonl", "a", encoding="utf-8") as handle:
                handle.write(json.dumps(row) + "\n")

    # ------------------------------------------------------------------ loop
    def fit(
        self,
        batches: Callable[[int], Iterator[Any]],
        *,
        resume_from: str | Path | None = None,
        on_step: Callable[[StepInfo], None] | None = None,
        logger: TrainLogger | None = None,
    ) -> TrainResult:
        """Train to ``settings.total_steps``.

        Every ``settings.log_every`` steps rank 0 writes a step line (``RUN/train.log``, and the console when
        it is not a terminal) and TensorBoard scalars (:class:`~saip_bench.engine.TrainLogger`).

        Args:
            batches: ``batches(micro_step)`` yields this rank's micro-batches from data position
                ``micro_step`` onwards (deterministic in the position, so a resumed run sees the same data).
            resume_from: a full checkpoint to continue from.
            on_step: called after every optimiser step (the CLI's progress bar).
            logger: the run's step log, when the caller keeps it open around more than the loop (its
                ``train.log`` then holds the run's set-up and export lines too); default: one for the loop.

        Raises:
            NonFiniteLossError: the loss became NaN or infinite (before the bad step's optimiser update;
                nothing of that step is saved).
            Interrupted: SIGTERM or SIGINT arrived; the checkpoint holds the state after the last whole step.
        """
        s = self.settings
        micro_step = 0
        result = TrainResult(steps_done=0)
        own_logger = logger is None
        if logger is None:
            logger = TrainLogger(
                self.run_dir, s.total_steps, s.log_every, tensorboard=s.tensorboard, enabled=self.info.is_main
            )
        try:
            if resume_from is not None:
                micro_step = self.resume(resume_from)
                result.resumed_from = self.step
                log.info("resumed from %s at step %d", resume_from, self.step)
            stream = batches(micro_step)
            start = time.perf_counter()
            logger.start(self.step)
            self.model.train()
            with StopRequest() as stop:  # SIGTERM / Ctrl-C: finish the step, save, stop (as fit does)
                while self.step < s.total_steps:
                    micro_step = self._train_step(stream, micro_step, result, logger, on_step)
                    flag = torch.tensor([1.0 if stop.requested else 0.0], device=self.info.device)
                    if D.all_reduce_sum(flag).item() > 0 and self.step < s.total_steps:  # all ranks agree
                        self._save(micro_step)
                        raise Interrupted(
                            f"{checkpoint_path(self.run_dir)}: interrupted at step {self.step}/"
                            f"{s.total_steps} by {stop.requested or 'another rank'}; rerun with --resume "
                            "to continue"
                        )
            result.steps_done = self.step
            result.seconds = time.perf_counter() - start
        finally:
            if own_logger:
                logger.close()
        return result

    def _train_step(
        self,
        stream: Iterator[Any],
        micro_step: int,
        result: TrainResult,
        logger: TrainLogger,
        on_step: Callable[[StepInfo], None] | None,
    ) -> int:
        """One optimiser step over ``accum_steps`` micro-batches; returns the new data position."""
        s = self.settings
        t0 = time.perf_counter()
        lr = lr_at(
            self.step,
            peak=s.base_lr,
            total_steps=s.total_steps,
            warmup_steps=s.warmup_steps,
            warmup_offset=1,
            floor=s.min_lr,
        )
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        sums: dict[str, torch.Tensor] = {}
        per_micro = s.ema_every == "micro_batch"
        for micro in range(s.accum_steps):
            batch = move_to(next(stream), self.info.device)
            last = micro == s.accum_steps - 1
            sync = contextlib.nullcontext() if last or not self.info.distributed else self.engine.no_sync()
            with sync:
                with autocast_context(self.info.device, s.precision):
                    out = self.engine(batch, self.step)
                self._check_finite(out)
                self.scaler.scale(out["loss"] / s.accum_steps).backward()
            for key, value in out.items():
                sums[key] = sums.get(key, 0.0) + value.detach().float() / s.accum_steps
            micro_step += 1
            if per_micro and not last:  # the last one moves the teacher after the optimiser step
                self.model.update_teacher(self.momentum_at(micro))
        if s.clip_grad:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.student.parameters(), s.clip_grad)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        momentum = self.momentum_at(s.accum_steps - 1)
        self.model.update_teacher(momentum)
        self.step += 1
        losses = self._reduce_losses(sums)
        ips = s.images_per_micro_batch * s.accum_steps / max(time.perf_counter() - t0, 1e-9)
        if not result.first_losses:
            result.first_losses = losses
        result.last_losses = losses
        if s.record_digests:
            self._record_digest()
        logger.step(self.step, losses, lr, ips, scalars={"train/momentum": momentum})
        if on_step is not None:
            on_step(StepInfo(self.step, s.total_steps, losses, lr, momentum, ips))
        if (s.checkpoint_every and self.step % s.checkpoint_every == 0) or self.step == s.total_steps:
            self._save(micro_step)
        return micro_step

    def momentum_at(self, micro: int) -> float:
        """The EMA momentum of the teacher update after micro-batch ``micro`` of the step about to run.

        ``optimizer_step``: the cosine at the optimiser step (one update per step, ``micro`` unused);
        ``micro_batch``: the cosine at the global micro-batch over ``total_steps * accum_steps`` of them.
        """
        s = self.settings
        if s.ema_every == "micro_batch":
            index = self.step * s.accum_steps + micro
            return cosine_ramp(index, s.total_steps * s.accum_steps, s.ema_start, s.ema_end)
        return cosine_ramp(self.step, s.total_steps, s.ema_start, s.ema_end)

    def _check_finite(self, out: dict[str, torch.Tensor]) -> None:
        where = checkpoint_path(self.run_dir)
        last = f"the last good checkpoint is {where}" if where.exists() else "no checkpoint was written"
        check_finite(
            out,
            run_dir=self.run_dir,
            step=self.step + 1,
            advice=f"{last}. Try a lower train.blr or train.clip_grad",
        )

    def _reduce_losses(self, sums: dict[str, torch.Tensor]) -> dict[str, float]:
        keys = sorted(sums)
        stacked = torch.stack([torch.as_tensor(sums[k], device=self.info.device).float() for k in keys])
        D.all_reduce_mean(stacked)
        return {k: float(v) for k, v in zip(keys, stacked.tolist(), strict=True)}
