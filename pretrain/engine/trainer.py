"""The training loop: accumulation, mixed precision, clipping, EMA, schedules, logging, checkpoints.

The loop knows nothing of the method: it drives any module with the meta-architecture's interface
(``forward(batch, step) -> {"loss": total, <term>: value}``, ``student``, ``update_teacher(momentum)``).
Every schedule is read at the GLOBAL optimiser step, and a checkpoint written at a step boundary holds all the
state the next step reads, so an interrupted run resumed from it produces the same weights bit for bit
(CPU, deterministic mode).
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from saip_bench.errors import SaipError
from saip_bench.io import atomic_write_json
from saip_bench.pretrain.engine import checkpoint as ckpt
from saip_bench.pretrain.engine import distributed as D
from saip_bench.pretrain.engine.optim import build_optimizer, cosine_ramp, lr_at, set_lr

log = logging.getLogger(__name__)


class NonFiniteLossError(SaipError):
    """The loss became NaN or infinite; training stopped before the bad step changed any saved state."""


class MetaArchLike(Protocol):
    student: nn.Module

    def __call__(self, batch: Any, step: int) -> dict[str, torch.Tensor]: ...

    def update_teacher(self, momentum: float) -> None: ...


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


def autocast_context(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16/fp16 autocast where asked (fp16 on CUDA only), a no-op for fp32."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


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
        self.engine = D.wrap_ddp(model, info)
        self.optimizer = build_optimizer(
            [model.student], lr=settings.base_lr, weight_decay=settings.weight_decay, betas=settings.betas
        )
        self.scaler = torch.amp.GradScaler(info.device.type, enabled=settings.precision == "fp16")
        self.step = 0
        self._writer = None

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
        state = ckpt.load_checkpoint(path)
        if self.info.is_main:  # a run killed mid-write leaves its temporary folder beside the checkpoint
            for stale in Path(path).parent.glob(f".{Path(path).name}.*.tmp"):
                shutil.rmtree(stale, ignore_errors=True)
        try:
            self.model.load_state_dict(state["model"], strict=True)
        except RuntimeError as err:
            first = str(err).strip().splitlines()[0]
            raise ckpt.CheckpointError(f"{path}: does not fit this run's model ({first})") from None
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        rng = state["rng"]
        if state.get("world_size") == self.info.world_size:
            ckpt.set_rng_state(rng[self.info.rank])
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
        # Every rank has the same weights; only rank 0 writes, with every rank's RNG states.
        rng_states = D.all_gather_object(ckpt.rng_state())
        if self.info.is_main:
            ckpt.save_checkpoint(ckpt.checkpoint_path(self.run_dir), self.state_dict(micro_step, rng_states))
            atomic_write_json(
                self.run_dir / "train_state.json", {"step": self.step, "micro_step": micro_step}
            )
        D.barrier()

    # --------------------------------------------------------------- logging
    def _tb(self):
        if self._writer is None and self.settings.tensorboard and self.info.is_main:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(self.run_dir / "tb"))
        return self._writer

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
    ) -> TrainResult:
        """Train to ``settings.total_steps``.

        Args:
            batches: ``batches(micro_step)`` yields this rank's micro-batches from data position
                ``micro_step`` onwards (deterministic in the position, so a resumed run sees the same data).
            resume_from: a full checkpoint to continue from.
            on_step: called after every optimiser step (the CLI's progress bar).
        """
        s = self.settings
        micro_step = 0
        result = TrainResult(steps_done=0)
        if resume_from is not None:
            micro_step = self.resume(resume_from)
            result.resumed_from = self.step
            log.info("resumed from %s at step %d", resume_from, self.step)
        stream = batches(micro_step)
        device = self.info.device
        start = time.perf_counter()
        self.model.train()
        while self.step < s.total_steps:
            t0 = time.perf_counter()
            lr = lr_at(
                self.step,
                base_lr=s.base_lr,
                warmup_steps=s.warmup_steps,
                total_steps=s.total_steps,
                min_lr=s.min_lr,
            )
            set_lr(self.optimizer, lr)
            self.optimizer.zero_grad(set_to_none=True)
            sums: dict[str, torch.Tensor] = {}
            for micro in range(s.accum_steps):
                batch = _to_device(next(stream), device)
                last = micro == s.accum_steps - 1
                sync = (
                    contextlib.nullcontext() if last or not self.info.distributed else self.engine.no_sync()
                )
                with sync:
                    with autocast_context(device, s.precision):
                        out = self.engine(batch, self.step)
                    loss = out["loss"]
                    self._check_finite(loss, out)
                    self.scaler.scale(loss / s.accum_steps).backward()
                for key, value in out.items():
                    sums[key] = sums.get(key, 0.0) + value.detach().float() / s.accum_steps
                micro_step += 1
            if s.clip_grad:
                self.scaler.unscale_(self.optimizer)
                torch.nn.utils.clip_grad_norm_(self.model.student.parameters(), s.clip_grad)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            momentum = cosine_ramp(self.step, s.total_steps, s.ema_start, s.ema_end)
            self.model.update_teacher(momentum)
            self.step += 1
            losses = self._reduce_losses(sums)
            dt = time.perf_counter() - t0
            ips = s.images_per_micro_batch * s.accum_steps / max(dt, 1e-9)
            if not result.first_losses:
                result.first_losses = losses
            result.last_losses = losses
            if s.record_digests:
                self._record_digest()
            writer = self._tb()
            if writer is not None and (self.step % max(1, s.log_every) == 0 or self.step == s.total_steps):
                for key, value in losses.items():
                    writer.add_scalar(f"loss/{key}", value, self.step)
                writer.add_scalar("train/lr", lr, self.step)
                writer.add_scalar("train/momentum", momentum, self.step)
                writer.add_scalar("train/images_per_s", ips, self.step)
            if self.step % max(1, s.log_every) == 0:
                log.debug("step %d loss %.4f lr %.3g", self.step, losses["loss"], lr)
            if on_step is not None:
                on_step(StepInfo(self.step, s.total_steps, losses, lr, momentum, ips))
            if (s.checkpoint_every and self.step % s.checkpoint_every == 0) or self.step == s.total_steps:
                self._save(micro_step)
        if self._writer is not None:
            self._writer.close()
        result.steps_done = self.step
        result.seconds = time.perf_counter() - start
        return result

    def _check_finite(self, loss: torch.Tensor, out: dict[str, torch.Tensor]) -> None:
        # All ranks must agree before anyone raises, or the others would hang in the next collective.
        bad = torch.tensor([0.0 if torch.isfinite(loss.detach()).all() else 1.0], device=self.info.device)
        D.all_reduce_sum(bad)
        if bad.item() > 0:
            terms = ", ".join(f"{k}={float(v.detach()):.4g}" for k, v in out.items())
            where = ckpt.checkpoint_path(self.run_dir)
            last = f"the last good checkpoint is {where}" if where.exists() else "no checkpoint was written"
            raise NonFiniteLossError(
                f"{self.run_dir}: loss is not finite at step {self.step + 1} ({terms}); training stopped "
                f"without saving the bad state; {last}. Try a lower train.blr or train.clip_grad"
            )

    def _reduce_losses(self, sums: dict[str, torch.Tensor]) -> dict[str, float]:
        keys = sorted(sums)
        stacked = torch.stack([torch.as_tensor(sums[k], device=self.info.device).float() for k in keys])
        D.all_reduce_mean(stacked)
        return {k: float(v) for k, v in zip(keys, stacked.tolist(), strict=True)}


def _to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(v, device) for v in batch)
    return batch
