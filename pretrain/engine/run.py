"""``run_pretraining``: the one library entry behind ``saip pretrain`` and ``saip demo``.

Config -> method -> meta-architecture -> data stream -> trainer -> backbone export, with rank-0-only writing.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig

from saip_bench.engine import distributed as D
from saip_bench.engine.checkpoint import load_checkpoint
from saip_bench.engine.logging import TrainLogger
from saip_bench.engine.params import exempt_rule
from saip_bench.engine.precision import resolve_precision
from saip_bench.engine.trackers import check_tracker, tracking
from saip_bench.errors import CheckpointError, ConfigError, SaipError
from saip_bench.io import undo_on_error
from saip_bench.pretrain import config as C
from saip_bench.pretrain.engine.compile import compile_model, resolve_compile
from saip_bench.pretrain.engine.optim import scaled_lr
from saip_bench.pretrain.engine.trainer import EMA_EVERY, StepInfo, Trainer, TrainSettings, checkpoint_path

log = logging.getLogger(__name__)


@dataclass
class PretrainResult:
    """What a finished run reports."""

    run_dir: Path
    steps: int
    method: str
    terms: list[str]
    first_losses: dict[str, float] = field(default_factory=dict)
    last_losses: dict[str, float] = field(default_factory=dict)
    export_path: Path | None = None
    resumed_from: int | None = None
    seconds: float = 0.0


def build_config(
    config: str | Path | None,
    *,
    method: str | None = None,
    objectives: str | Sequence[str] | None = None,
    steps: int | None = None,
    batch_size: int | None = None,
    export: str | None = None,
    overrides: Sequence[str] = (),
) -> DictConfig:
    """The run's config: recipe + the named options (as overrides) + ``key=value`` overrides last."""
    named = []
    if method is not None:
        named.append(f"method={method}")
    if objectives is not None:
        text = objectives if isinstance(objectives, str) else ",".join(objectives)
        named.append(f"objectives='{text}'")
    if steps is not None:
        named.append(f"train.steps={int(steps)}")
    if batch_size is not None:
        named.append(f"train.batch_size={int(batch_size)}")
    if export is not None:
        named.append(f"export.which={export}")
    return C.load_config(config, [*named, *overrides])


def _pick_device(name: str) -> str | None:
    if name == "auto":
        return None
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device=cuda: no CUDA device is available here")
    if name not in ("cpu", "cuda"):
        raise ConfigError(f"device={name!r}: expected auto, cpu or cuda")
    return name


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def run_pretraining(
    cfg: DictConfig,
    data: str | Path,
    out: str | Path,
    *,
    resume: bool = False,
    on_step: Callable[[StepInfo], None] | None = None,
) -> PretrainResult:
    """Pretrain a backbone and export it to ``out/backbone.safetensors``.

    Args:
        cfg: the config from :func:`build_config` (or :func:`saip_bench.pretrain.config.load_config`).
        data: a folder of person crops (LUP format, e.g. ``saip data synth --format lup`` output's ``LUP``).
        out: the run directory (checkpoint, resolved config, TensorBoard logs, export).
        resume: continue from ``out/checkpoint.pt`` exactly where it stopped.
        on_step: called after every optimiser step on rank 0 (progress display).

    Raises:
        SaipError: bad data folder, config or checkpoint, or a non-finite loss.
    """
    from saip_bench.pretrain import methods
    from saip_bench.pretrain.data.dataset import PretrainDataset, micro_batches
    from saip_bench.pretrain.export import EXPORT_NAME, export_backbone
    from saip_bench.pretrain.meta_arch import MetaArch

    out = Path(out)
    tc = cfg.train
    if tc.threads:
        torch.set_num_threads(int(tc.threads))
    if tc.deterministic:
        torch.use_deterministic_algorithms(True)
    info = D.init_distributed(_pick_device(cfg.device))
    if tc.malloc_mmap_threshold_mb and info.device.type == "cpu":
        from saip_bench.pretrain.engine.cpu_memory import set_mmap_threshold

        set_mmap_threshold(float(tc.malloc_mmap_threshold_mb))
    try:
        spec = methods.resolve(cfg.method, cfg.objectives, dict(cfg.loss))
        check_run_dir(out, resume=resume)
        _check_numbers(cfg)
        tracker = check_tracker(tc.tracker or "none", source="train.tracker")
        dataset = PretrainDataset.from_config(Path(data), cfg, seed=int(cfg.seed), spec=spec)
        per_step = tc.batch_size * tc.accum_steps * info.world_size
        per_epoch = steps_per_epoch(len(dataset), int(tc.batch_size), info.world_size, int(tc.accum_steps))
        total = int(tc.steps) if tc.steps is not None else int(tc.epochs) * per_epoch
        warmup = int(tc.warmup_steps) if tc.warmup_steps is not None else int(tc.warmup_epochs) * per_epoch
        warmup = min(warmup, max(0, total - 1))
        if total < 1:
            raise ConfigError("train.steps: must be at least 1")
        precision = resolve_precision(str(tc.precision), info.device)

        seed_everything(int(cfg.seed))  # same initial weights on every rank
        model = MetaArch.from_config(cfg, spec).to(info.device)
        if resolve_compile(tc.compile, info.device):  # in place: names and state_dict keys unchanged
            compile_model(model)
        seed_everything(int(cfg.seed) + 7919 * info.rank)  # each rank its own masks and draws
        if resume:  # nothing of the run may change before its checkpoint is known good
            _check_checkpoint(checkpoint_path(out), model)
        # A refusal from here on takes back what this attempt wrote: a new run folder goes; an existing one
        # keeps its files (config.yaml put back) unless its checkpoint moved on.
        with undo_on_error(
            out,
            restore=(C.RESOLVED_NAME, "train_state.json"),
            progress=checkpoint_path(out).name,
            enabled=info.is_main,
        ):
            if info.is_main:
                out.mkdir(parents=True, exist_ok=True)
                C.write_resolved(cfg, out)
            D.barrier()
            settings = TrainSettings(
                total_steps=total,
                base_lr=scaled_lr(float(tc.blr), per_step),
                warmup_steps=warmup,
                min_lr=float(tc.min_lr),
                weight_decay=float(tc.weight_decay),
                betas=tuple(tc.betas),
                accum_steps=int(tc.accum_steps),
                clip_grad=float(tc.clip_grad) if tc.clip_grad else None,  # null or 0: no clipping
                precision=precision,
                ema_start=float(tc.ema_start),
                ema_end=float(tc.ema_end),
                ema_every=str(tc.ema_every),
                wd_exempt=str(tc.wd_exempt),
                checkpoint_every=int(tc.checkpoint_every),
                log_every=int(tc.log_every),
                images_per_micro_batch=int(tc.batch_size) * info.world_size,
                record_digests=bool(tc.record_digests),
                tensorboard=bool(tc.tensorboard),
            )
            train_log = TrainLogger(
                out, total, int(tc.log_every), tensorboard=bool(tc.tensorboard), enabled=info.is_main
            )
            with tracking(
                tracker, out, params=C.to_dict(cfg), project=tc.tracker_project, directory=tc.tracker_dir,
                job_type="pretrain", resume=resume, enabled=info.is_main,
            ), train_log:  # fmt: skip
                extra = {"config": C.to_dict(cfg)}
                trainer = Trainer(model, settings, run_dir=out, info=info, extra_state=extra)
                log.info(
                    "%s (%s) on %s x%d: %d steps, effective batch %d, lr %.3g, %s",
                    spec.name,
                    ",".join(spec.terms),
                    info.device,
                    info.world_size,
                    total,
                    per_step,
                    settings.base_lr,
                    precision,
                )

                def batches(micro_step: int):
                    return micro_batches(
                        dataset,
                        batch_size=int(tc.batch_size),
                        seed=int(cfg.seed),
                        rank=info.rank,
                        world_size=info.world_size,
                        start=micro_step,
                        num_workers=int(tc.num_workers),
                        pin_memory=info.device.type == "cuda",
                    )

                step_cb = on_step if info.is_main else None
                res = trainer.fit(
                    batches,
                    resume_from=checkpoint_path(out) if resume else None,
                    on_step=step_cb,
                    logger=train_log,
                )
                export_path = None
                if info.is_main:
                    export_path = export_backbone(
                        model,
                        out / EXPORT_NAME,
                        which=str(cfg.export.which),
                        method=spec.name,
                        step=res.steps_done,
                        config=cfg,
                        source=str(out),
                    )
        D.barrier()
        return PretrainResult(
            run_dir=out,
            steps=res.steps_done,
            method=spec.name,
            terms=list(spec.terms),
            first_losses=res.first_losses,
            last_losses=res.last_losses,
            export_path=export_path,
            resumed_from=res.resumed_from,
            seconds=res.seconds,
        )
    finally:
        D.cleanup()


def check_run_dir(out: str | Path, *, resume: bool) -> None:
    """Refuse a run directory that does not fit ``resume``: no checkpoint to resume, or one a new run would
    overwrite.

    Raises:
        SaipError: one line naming the run directory or its checkpoint.
    """
    out = Path(out)
    if resume and not checkpoint_path(out).is_file():
        raise SaipError(f"{checkpoint_path(out)}: --resume given but the run has no checkpoint")
    if not resume and checkpoint_path(out).is_file():
        raise SaipError(
            f"{out}: holds a checkpoint already; pass --resume to continue it or pick a new --out"
        )


def _check_numbers(cfg: DictConfig) -> None:
    """Keys whose defaults are null accept any YAML value: check the numbers the loop reads."""
    tc = cfg.train
    for key in ("steps", "warmup_steps", "threads"):
        value = tc[key]
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            raise ConfigError(f"train.{key}={value!r}: expected a non-negative integer or null")
    for key in ("batch_size", "accum_steps"):
        if int(tc[key]) < 1:
            raise ConfigError(f"train.{key}={tc[key]}: must be at least 1")
    if tc.ema_every not in EMA_EVERY:
        raise ConfigError(f"train.ema_every={tc.ema_every!r}: expected one of {', '.join(EMA_EVERY)}")
    exempt_rule(str(tc.wd_exempt))
    betas = list(tc.betas)
    if len(betas) != 2 or not all(isinstance(b, int | float) and 0.0 <= b < 1.0 for b in betas):
        raise ConfigError(f"train.betas={betas}: expected two numbers in [0, 1)")


def _check_checkpoint(path: Path, model: torch.nn.Module) -> None:
    """Refuse a checkpoint that cannot be read (truncated, pickling code) or does not fit ``model``.

    The trainer loads it again when it resumes; checking it first keeps a refused ``--resume`` from writing
    anything into the run (its config.yaml, a log line).
    """
    state = load_checkpoint(path)
    try:
        model.load_state_dict(state["model"], strict=True)
    except (KeyError, TypeError, RuntimeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{path}: does not fit this run's model ({first})") from None


def steps_per_epoch(n_images: int, batch_size: int, world_size: int, accum: int) -> int:
    """Optimiser steps in one pass over ``n_images`` (drop-last, as the sampler does)."""
    return max(1, math.floor(n_images / (batch_size * world_size) / accum))
