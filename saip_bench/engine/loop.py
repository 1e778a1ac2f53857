"""The fine-tuning engine every task trains with.

One loop for all tasks: AdamW or SGD, layer-wise lr decay (ViT and TinyViT), linear warm-up then cosine or
step decay (per step), bf16 autocast on CUDA, exact resume. The task supplies the model, the data, a
``step_fn`` that returns named losses and an ``evaluate_fn`` that returns metrics; evaluation and best/last
selection, logging, progress and checkpoints are hooks (:mod:`saip_bench.engine.hooks`), and a caller may add
its own.

Under ``torchrun`` (an initialised process group) the model is wrapped in DistributedDataParallel and only
rank 0 writes checkpoints; the task's loader must shard its data (e.g. a DistributedSampler).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import random
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from saip_bench.engine.batch import move_to
from saip_bench.engine.checkpoint import load_checkpoint, set_rng_state
from saip_bench.engine.distributed import (
    all_reduce_sum,
    broadcast_buffers,
    is_dist,
    rank,
    world_size,
    wrap_ddp,
)
from saip_bench.engine.finite import check_finite
from saip_bench.engine.hooks import CheckpointHook, EvalHook, Hook, LogHook, ProgressHook, Run
from saip_bench.engine.logging import TrainLogger
from saip_bench.engine.params import build_optimizer, build_param_groups, check_hyperparameters, check_number
from saip_bench.engine.sampling import (
    EpochSampler,
    Resumable,
    SeededBatches,
    SeededSamples,
    ignore_stop_signals,
)
from saip_bench.engine.schedule import lr_factor
from saip_bench.engine.signals import StopRequest
from saip_bench.engine.trackers import DEFAULT_PROJECT, check_tracker, tracking
from saip_bench.errors import CheckpointError, ConfigError, Interrupted

log = logging.getLogger(__name__)

#: Progress callback: ``progress(description, completed, total)``; the CLI draws it as a rich bar.
#: ``total`` may be 0 when unknown. Library code reports progress only through this, it never prints.
ProgressFn = Callable[[str, int, int], None]

StepFn = Callable[[nn.Module, Any], dict[str, torch.Tensor]]
EvaluateFn = Callable[[nn.Module], dict[str, float]]

#: EngineConfig keys that do not change what is trained: a run may resume with other values of them.
_RESUME_NEUTRAL = ("checkpoint_every", "log_every", "tracker", "tracker_dir", "tracker_project")
_END = object()
#: EngineConfig numbers that must be finite and >= 0 besides the ones every config is checked for.
_NON_NEGATIVE = ("warmup_epochs", "warmup_start_factor", "min_lr_ratio", "gamma", "grad_clip", "layer_decay")


@dataclass(frozen=True)
class EngineConfig:
    """Training hyper-parameters: the ``train`` section of a recipe, key for key.

    Attributes:
        epochs: number of epochs.
        optimizer: ``"adamw"`` or ``"sgd"``.
        lr: peak learning rate of the head (backbone: x ``backbone_lr_mult`` x layer decay).
        weight_decay: applied to weights of rank >= 2 only (no decay on biases, norms, tokens, pos_embed).
        momentum: SGD momentum.
        nesterov: SGD Nesterov momentum.
        betas: AdamW betas.
        layer_decay: ViT layer-wise lr decay factor (e.g. 0.65); None or 1 disables it.
        backbone_lr_mult: lr multiplier of every backbone parameter relative to the head.
        schedule: ``"cosine"``, ``"step"`` or ``"constant"`` after warm-up.
        warmup_epochs: linear warm-up length in epochs (fractional allowed).
        warmup_start_factor: lr factor at step 0 of the warm-up.
        min_lr_ratio: cosine floor as a fraction of the peak lr.
        milestones: epochs at which the step schedule multiplies the lr by ``gamma``.
        gamma: step schedule factor.
        max_steps_per_epoch: cap on steps per epoch (budgets use it); None = the whole loader.
        eval_every: evaluate every N epochs (0 = only after the last epoch).
        select: report the ``"last"`` epoch's model or the ``"best"`` one by the primary metric.
        amp: bf16 autocast on CUDA (ignored on CPU).
        grad_clip: max global gradient norm, or None.
        checkpoint_every: also write ``last.pt`` every N optimizer steps (0: only at epoch ends); a run killed
            without warning (SIGKILL, a node lost) then resumes from at most N steps back. SIGTERM/SIGINT
            always write it before stopping.
        log_every: a plain progress line (``train.log``, TensorBoard) every N optimizer steps.
        tracker: also log to an experiment tracker: ``"none"``, ``"mlflow"`` or ``"wandb"``
            (:mod:`saip_bench.engine.trackers`; optional extras).
        tracker_dir: where the tracker writes; default its environment variable (``MLFLOW_TRACKING_URI``,
            ``WANDB_DIR``), else ``./mlruns`` / ``./wandb``.
        tracker_project: the MLflow experiment / W&B project.
    """

    epochs: int = 1
    optimizer: Literal["adamw", "sgd"] = "adamw"
    lr: float = 1e-3
    weight_decay: float = 0.05
    momentum: float = 0.9
    nesterov: bool = False
    betas: tuple[float, float] = (0.9, 0.999)
    layer_decay: float | None = None
    backbone_lr_mult: float = 1.0
    schedule: Literal["cosine", "step", "constant"] = "cosine"
    warmup_epochs: float = 0.0
    warmup_start_factor: float = 0.01
    min_lr_ratio: float = 0.0
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1
    max_steps_per_epoch: int | None = None
    eval_every: int = 0
    select: Literal["last", "best"] = "last"
    amp: bool = True
    grad_clip: float | None = None
    checkpoint_every: int = 0
    log_every: int = 10
    tracker: str = "none"
    tracker_dir: str | None = None
    tracker_project: str = DEFAULT_PROJECT

    @classmethod
    def from_dict(cls, values: dict[str, Any], *, source: str = "recipe train section") -> EngineConfig:
        """Build from a recipe's ``train`` dict; an unknown key or a bad choice is a :class:`ConfigError`."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ConfigError(
                f"{source}: unknown key(s) {', '.join(unknown)}; valid: {', '.join(sorted(names))}"
            )
        kwargs = dict(values)
        if "tracker" in kwargs and kwargs["tracker"] is None:  # train.tracker=null: off, as "none"
            kwargs["tracker"] = "none"
        for f in dataclasses.fields(cls):  # key=value overrides arrive as any YAML scalar
            if f.name in kwargs and not _scalar_fits(kwargs[f.name], str(f.type)):
                raise ConfigError(f"{source}: {f.name} must be {f.type}, not {kwargs[f.name]!r}")
        for key in ("betas", "milestones"):
            if key in kwargs and kwargs[key] is not None:
                kwargs[key] = tuple(kwargs[key])
        # NaN, infinite or negative numbers fail here, in one line, not as torch's "Invalid learning rate".
        check_hyperparameters(kwargs, source=source)
        for key in _NON_NEGATIVE:
            if key in kwargs:
                check_number(kwargs[key], key=key, source=source)
        config = cls(**kwargs)
        for key, valid in (
            ("optimizer", ("adamw", "sgd")),
            ("schedule", ("cosine", "step", "constant")),
            ("select", ("last", "best")),
        ):
            if getattr(config, key) not in valid:
                raise ConfigError(
                    f"{source}: {key} must be one of {', '.join(valid)}, not {getattr(config, key)!r}"
                )
        if config.epochs < 1:
            raise ConfigError(f"{source}: epochs must be >= 1")
        if any(not (0.0 <= beta < 1.0) for beta in config.betas) or not (0.0 <= config.momentum < 1.0):
            raise ConfigError(f"{source}: betas and momentum must be in [0, 1)")
        if config.eval_every < 0:
            raise ConfigError(f"{source}: eval_every must be >= 0 (0: after the last epoch only)")
        if config.checkpoint_every < 0:
            raise ConfigError(f"{source}: checkpoint_every must be >= 0 (0: at epoch ends only)")
        if config.log_every < 1:
            raise ConfigError(f"{source}: log_every must be >= 1")
        check_tracker(config.tracker, source=f"{source}: tracker")
        if config.tracker_dir is not None and not isinstance(config.tracker_dir, str):
            raise ConfigError(f"{source}: tracker_dir must be a folder or null, not {config.tracker_dir!r}")
        if not isinstance(config.tracker_project, str) or not config.tracker_project:
            raise ConfigError(f"{source}: tracker_project must be a name, not {config.tracker_project!r}")
        return config


def _scalar_fits(value: Any, annotation: str) -> bool:
    """Whether ``value`` has a scalar annotation's type (``int``, ``float | None``, ...); others pass."""
    allowed = set(annotation.replace(" ", "").split("|"))
    if not allowed <= {"int", "float", "bool", "None"}:
        return True  # Literal choices and tuples are checked by from_dict itself
    if value is None:
        return "None" in allowed
    if isinstance(value, bool):
        return "bool" in allowed
    if isinstance(value, int):
        return bool(allowed & {"int", "float"})
    return isinstance(value, float) and "float" in allowed


@dataclass
class FitResult:
    """Outcome of :func:`fit`: the selected epoch's metrics and the training history.

    ``resumed_from`` / ``resumed_from_step`` are the epochs / optimizer steps a resumed run found done (0 for
    a fresh run); ``elapsed_s`` is the training time of every attempt together.
    """

    metrics: dict[str, float]
    selected_epoch: int
    best_metrics: dict[str, float] = field(default_factory=dict)
    best_epoch: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    resumed_from: int = 0
    resumed_from_step: int = 0
    elapsed_s: float = 0.0


def make_optimizer(groups: list[dict[str, Any]], config: EngineConfig) -> torch.optim.Optimizer:
    """AdamW or SGD over prepared parameter groups, as an :class:`EngineConfig` says."""
    return build_optimizer(
        groups,
        optimizer=config.optimizer,
        lr=config.lr,
        betas=config.betas,
        momentum=config.momentum,
        nesterov=config.nesterov,
    )


def loader_workers(requested: int) -> int:
    """DataLoader workers: the recipe's number, capped at the CPU cores this process may use.

    Recipes are written for training machines; on a small one more workers than cores only add contention.
    """
    import os

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(0, min(int(requested), cores))


def make_train_loader(
    dataset: Any,
    *,
    batch_size: int,
    seed: int,
    num_workers: int,
    device: torch.device | str,
    min_batch: int = 1,
    collate_fn: Callable[[list[Any]], Any] | None = None,
    batch_sampler: Any = None,
    persistent_workers: bool = False,
) -> torch.utils.data.DataLoader:
    """The training loader every task uses: a resumable seeded order and per-sample augmentation seeds.

    The order of epoch ``e`` is a pure function of ``(seed, e)`` (:class:`~saip_bench.engine.sampling.
    EpochSampler`; under DDP each rank takes its share of the same permutation), and every sample is loaded
    with the RNG seeded from ``(seed, e, its position)`` (:class:`~saip_bench.engine.sampling.SeededSamples`):
    the batches do not depend on the number of workers, and :func:`fit` resumes mid-epoch at the same batch
    with the same augmentation.

    Args:
        dataset: the training set (map-style).
        batch_size: the recipe's batch size (per process); capped at the set's size, at least ``min_batch``
            (2 where BatchNorm or in-batch contrastive losses need pairs).
        seed: the run's seed (the request's), so a run repeats and ranks agree.
        num_workers: the recipe's worker count, capped by :func:`loader_workers`.
        device: pinned memory on CUDA.
        collate_fn: batch assembly for samples that are not plain tensors (mm data samples).
        batch_sampler: a task's own batch sampler (e.g. the re-ID P x K one) instead of the shuffled order;
            it yields index lists and has ``set_epoch`` / ``set_start`` (``batch_size`` is then unused).
        persistent_workers: keep the workers between epochs (worth it when starting them is slow).
    """
    from torch.utils.data import DataLoader

    workers = loader_workers(num_workers)
    common: dict[str, Any] = dict(
        num_workers=workers,
        pin_memory=torch.device(device).type == "cuda",
        # Only the workers' base seed comes from here; a fixed generator keeps that draw off the global RNG.
        generator=torch.Generator().manual_seed(seed),
        collate_fn=collate_fn,
        persistent_workers=persistent_workers and workers > 0,
        worker_init_fn=ignore_stop_signals,
    )
    if batch_sampler is not None:
        batches = SeededBatches(batch_sampler, seed=seed, rank=rank())
        return DataLoader(SeededSamples(dataset), batch_sampler=batches, **common)
    check_number(batch_size, key="batch_size", source="training loader", minimum=1, integer=True)
    size = max(min_batch, min(int(batch_size), len(dataset)))
    sampler = EpochSampler(len(dataset), batch_size=size, seed=seed, num_replicas=world_size(), rank=rank())
    return DataLoader(SeededSamples(dataset), batch_size=size, sampler=sampler, drop_last=True, **common)


def _config_record(config: EngineConfig) -> dict[str, Any]:
    """The config a checkpoint must match to resume: every key but those that do not change the numbers."""
    record = json.loads(json.dumps(dataclasses.asdict(config)))
    for key in _RESUME_NEUTRAL:
        record.pop(key, None)
    return record


@contextlib.contextmanager
def _forked_host_rng() -> Iterator[None]:
    """numpy's and python's global RNG put back as they were after the block (torch has fork_rng)."""
    numpy_state, python_state = np.random.get_state(), random.getstate()
    try:
        yield
    finally:
        np.random.set_state(numpy_state)
        random.setstate(python_state)


def _epoch_batches(train_loader: Iterable[Any], epoch: int, start: int) -> Iterator[Any]:
    """An iterator over epoch ``epoch``'s batches from batch ``start`` on.

    A resumable sampler (``set_epoch`` + ``set_start``, e.g. :func:`make_train_loader`'s) starts there without
    loading the skipped batches; any other iterable is advanced by drawing them (exact only when its order is
    a pure function of the epoch, e.g. a list).
    """
    resumable = None
    for obj in (getattr(train_loader, "batch_sampler", None), getattr(train_loader, "sampler", None)):
        if hasattr(obj, "set_epoch"):
            obj.set_epoch(epoch)
        if resumable is None and isinstance(obj, Resumable):
            resumable = obj
    if resumable is not None:
        resumable.set_start(start)
    # A DataLoader without a generator draws its workers' base seed from the global RNG when an iterator is
    # made; forking keeps that draw out of the training stream, which a resumed epoch would not repeat.
    with torch.random.fork_rng(devices=[]):
        iterator = iter(train_loader)
    if resumable is None and start:
        log.warning("the training loader cannot start mid-epoch: drawing %d batches to skip them", start)
        for _ in range(start):
            next(iterator, None)
    return iterator


def _restore(
    path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, config: dict[str, Any], state: dict
) -> None:
    """Load ``last.pt`` into the model, the optimizer, ``state`` and this rank's RNG streams."""
    ckpt = load_checkpoint(path)
    if ckpt.get("config") != config:
        raise CheckpointError(f"{path}: written with another training config; use --force to restart")
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    state.update({k: ckpt[k] for k in state if k in ckpt})
    rngs = ckpt.get("rng") or []
    if len(rngs) == world_size():
        set_rng_state(rngs[rank()])
    else:
        log.warning(
            "%s was written by %d process(es), not %d: the random streams cannot continue exactly",
            path, len(rngs), world_size(),
        )  # fmt: skip
    log.info("resuming from %s at epoch %d, step %d", path, state["epoch"] + 1, state["step"])


def _evaluate(
    model: nn.Module, evaluate_fn: EvaluateFn, device: torch.device, use_amp: bool
) -> dict[str, float]:
    """``evaluate_fn`` in eval mode without gradients (under bf16 autocast when training uses it)."""
    broadcast_buffers(model)  # every rank evaluates rank 0's model (see broadcast_buffers)
    model.eval()
    with torch.no_grad(), torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_amp):
        return {k: float(v) for k, v in evaluate_fn(model).items()}


def _batch_len(batch: Any) -> int:
    """Samples in a batch: the leading size of its first tensor (0 when it has none)."""
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0]) if batch.ndim else 1
    if isinstance(batch, dict):
        batch = list(batch.values())
    if isinstance(batch, (list, tuple)) and batch:
        return _batch_len(batch[0]) if not isinstance(batch[0], (int, float)) else len(batch)
    return 0


def _all_agree(flag: bool, device: torch.device) -> bool:
    """True when ``flag`` is set on any rank (a collective under a process group, so all ranks stop)."""
    if not is_dist():
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=device)
    return bool(all_reduce_sum(value).item() > 0)


def fit(
    model: nn.Module,
    train_loader: Iterable[Any],
    step_fn: StepFn,
    *,
    config: EngineConfig,
    run_dir: Path,
    device: torch.device | str,
    evaluate_fn: EvaluateFn | None = None,
    primary_metric: str | None = None,
    best: Literal["max", "min"] = "max",
    param_groups: list[dict[str, Any]] | None = None,
    resume: bool = False,
    progress: ProgressFn | None = None,
    seed: int | None = None,
    hooks: Sequence[Hook] = (),
) -> FitResult:
    """Train ``model`` and return the selected epoch's metrics; the model ends holding the selected weights.

    **Exact resume.** ``last.pt`` holds the model, the optimizer, the global step (the lr schedule's
    position), the epoch and the batch within it, every rank's RNG states (torch CPU/CUDA, numpy, python),
    the best-so-far state, the history, the epoch's running loss sums and the training seconds of all
    attempts. It is written atomically by rank 0 at every epoch end, every ``checkpoint_every`` steps, and
    when SIGTERM/SIGINT arrives (the step in progress finishes first, then :class:`Interrupted` is raised).
    With a loader whose order and augmentation are pure functions of the seed and the sample's place
    (:func:`make_train_loader`), a run resumed from any of those checkpoints ends with the weights and
    metrics of an uninterrupted one.

    Args:
        model: the task model (backbone under attribute ``backbone`` plus head), already on ``device``.
        train_loader: an iterable of batches, re-iterated every epoch; ``len()`` is used when available.
            A ``sampler``/``batch_sampler`` with ``set_epoch`` gets it every epoch; one with ``set_start`` too
            (:class:`saip_bench.engine.sampling.Resumable`) starts a resumed epoch at its batch.
        step_fn: ``step_fn(model, batch) -> {"loss": scalar, other named terms...}``; the batch has been
            moved to ``device`` and runs under autocast.
        config: the hyper-parameters.
        run_dir: folder for ``last.pt``, ``best.pt``, ``history.json``, ``train.log`` and ``tb/``.
        device: where to train.
        evaluate_fn: ``evaluate_fn(model) -> metrics``; called in eval mode under ``torch.no_grad`` every
            ``eval_every`` epochs and after the last one.
        primary_metric: metric key used for ``select: best`` (required then).
        best: ``"max"`` or ``"min"``: which direction of the primary metric is better.
        param_groups: prepared optimizer groups; default :func:`build_param_groups` from ``config``.
        resume: continue from ``run_dir/last.pt`` if present (the config must match).
        progress: ``progress(description, done_steps, total_steps)`` callback.
        seed: when given, training draws from torch's global RNG (dropout, drop-path, mmdet's samplers)
            seeded with it, forked (numpy's and python's RNG too) so the caller's RNG state is untouched:
            the run repeats on the same machine.
        hooks: the caller's own :class:`~saip_bench.engine.hooks.Hook` objects, called after the engine's
            (evaluation, logging, progress, checkpoint) after every step and every epoch.

    Raises:
        CheckpointError: ``resume`` finds a checkpoint written with another config, or an unreadable one.
        ConfigError: ``select: best`` without ``evaluate_fn``/``primary_metric``.
        Interrupted: SIGTERM or SIGINT arrived; ``last.pt`` holds the state after the last finished step.
        NonFiniteLossError: the loss became NaN or infinite.
    """
    device = torch.device(device)
    if seed is not None:
        forked = []
        if device.type == "cuda":
            forked = [device.index if device.index is not None else torch.cuda.current_device()]
        with torch.random.fork_rng(devices=forked), _forked_host_rng():
            torch.manual_seed(seed)
            return fit(
                model, train_loader, step_fn, config=config, run_dir=run_dir, device=device,
                evaluate_fn=evaluate_fn, primary_metric=primary_metric, best=best, param_groups=param_groups,
                resume=resume, progress=progress, hooks=hooks,
            )  # fmt: skip
    started = time.perf_counter()
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if config.select == "best" and (evaluate_fn is None or primary_metric is None):
        raise ConfigError("select: best needs an evaluation function and a primary metric")
    try:
        n_batches = len(train_loader)  # type: ignore[arg-type]
    except TypeError:
        n_batches = config.max_steps_per_epoch or 1
    steps_per_epoch = min(n_batches, config.max_steps_per_epoch or n_batches)
    total_steps = steps_per_epoch * config.epochs
    if param_groups is None:
        param_groups = build_param_groups(
            model,
            lr=config.lr,
            weight_decay=config.weight_decay,
            layer_decay=config.layer_decay,
            backbone_lr_mult=config.backbone_lr_mult,
        )
    for group in param_groups:
        # lr 0 (an untrained control run) keeps every group's scale at 1 instead of dividing by zero.
        group.setdefault("lr_scale", group.get("lr", config.lr) / config.lr if config.lr else 1.0)
    optimizer = make_optimizer(param_groups, config)
    config_record = _config_record(config)

    # Everything a resumed run needs besides weights, optimizer and RNG; "batch" is the next batch of "epoch".
    state: dict[str, Any] = {
        "epoch": 0, "batch": 0, "step": 0, "history": [], "best_value": None, "best_epoch": 0,
        "best_metrics": {}, "epoch_sums": {}, "epoch_count": 0, "elapsed_s": 0.0,
    }  # fmt: skip
    last_path = run_dir / "last.pt"
    if resume and last_path.is_file():
        _restore(last_path, model, optimizer, config_record, state)
    resumed_from, resumed_from_step = int(state["epoch"]), int(state["step"])
    use_amp = config.amp and device.type == "cuda"
    run = Run(
        model, optimizer, config, run_dir, device, state, total_steps, steps_per_epoch, use_amp=use_amp,
        step=int(state["step"]), prior_s=float(state["elapsed_s"]), started=started,
    )  # fmt: skip
    checkpoint = CheckpointHook(config_record)
    all_hooks: list[Hook] = []
    if evaluate_fn is not None:
        all_hooks.append(
            EvalHook(lambda r: _evaluate(r.model, evaluate_fn, device, use_amp), primary_metric, best)
        )
    all_hooks.append(LogHook(TrainLogger(run_dir, total_steps, config.log_every, start_step=run.step)))
    if progress is not None:
        all_hooks.append(ProgressHook(progress))
    all_hooks += [checkpoint, *hooks]

    train_model = wrap_ddp(model, device)
    with StopRequest() as stop, contextlib.ExitStack() as closing:
        # The caller's tracker run when it has one open for run_dir (an evaluation's), else one for the fit.
        closing.enter_context(
            tracking(
                config.tracker, run_dir, params={"train": dataclasses.asdict(config)}, job_type="fit",
                project=config.tracker_project, directory=config.tracker_dir, resume=resume,
            )
        )  # fmt: skip
        for hook in all_hooks:
            closing.callback(hook.close)
        for epoch in range(int(state["epoch"]), config.epochs):
            resuming = epoch == resumed_from and int(state["batch"]) > 0
            run.epoch, run.batch = epoch, int(state["batch"]) if resuming else 0
            run.epoch_sums = dict(state["epoch_sums"]) if resuming else {}
            run.epoch_count = int(state["epoch_count"]) if resuming else 0
            train_model.train()
            if run.batch < steps_per_epoch:
                batches = _epoch_batches(train_loader, epoch, run.batch)
                tick = time.perf_counter()
                for i in range(run.batch, steps_per_epoch):
                    batch = next(batches, _END)
                    if batch is _END:
                        break
                    factor = lr_factor(
                        run.step, total_steps=total_steps, steps_per_epoch=steps_per_epoch, config=config
                    )
                    for group in optimizer.param_groups:
                        group["lr"] = config.lr * group["lr_scale"] * factor
                    size = _batch_len(batch) * world_size()
                    batch = move_to(batch, device)
                    with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_amp):
                        losses = step_fn(train_model, batch)
                    check_finite(
                        losses,
                        run_dir=run_dir,
                        step=run.step + 1,
                        # only a checkpoint that exists is worth naming (checkpoint_every 0: epoch ends)
                        advice=f"last good state: {last_path}" if last_path.is_file() else "",
                    )
                    optimizer.zero_grad(set_to_none=True)
                    losses["loss"].backward()
                    if config.grad_clip:
                        nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
                    optimizer.step()
                    run.step, run.batch, run.epoch_count = run.step + 1, i + 1, run.epoch_count + 1
                    run.losses = {key: float(value.detach()) for key, value in losses.items()}
                    for key, value in run.losses.items():
                        run.epoch_sums[key] = run.epoch_sums.get(key, 0.0) + value
                    now = time.perf_counter()
                    run.lr = config.lr * factor
                    run.images_per_s = size / (now - tick) if size and now > tick else None
                    tick = now
                    for hook in all_hooks:
                        hook.after_step(run)
                    if _all_agree(stop.requested is not None, device):
                        if checkpoint.saved_at != run.step:
                            checkpoint.save(run, epoch=epoch, batch=run.batch)
                        raise Interrupted(
                            f"{last_path}: interrupted at step {run.step}/{total_steps} by "
                            f"{stop.requested or 'another rank'}; rerun with --resume to continue"
                        )
                del batches  # ends its workers before the evaluation starts its own
            count = max(1, run.epoch_count)
            record: dict[str, float] = {
                "epoch": epoch + 1,
                **{k: v / count for k, v in run.epoch_sums.items()},
            }
            log.debug("epoch %d: %s", epoch + 1, record)
            for hook in all_hooks:
                hook.after_epoch(run, record)
            model.train()
            if _all_agree(stop.requested is not None, device):
                raise Interrupted(
                    f"{last_path}: interrupted after epoch {epoch + 1} (step {run.step}/{total_steps}) by "
                    f"{stop.requested or 'another rank'}; rerun with --resume to continue"
                )
    last_metrics = run.metrics
    best_path = run.best_path
    elapsed = run.elapsed_s
    resumed = {"resumed_from": resumed_from, "resumed_from_step": resumed_from_step, "elapsed_s": elapsed}
    if config.select == "best" and best_path.is_file():
        model.load_state_dict(load_checkpoint(best_path)["model"])
        return FitResult(
            dict(state["best_metrics"]),
            int(state["best_epoch"]),
            dict(state["best_metrics"]),
            int(state["best_epoch"]),
            list(state["history"]),
            **resumed,
        )
    if not last_metrics and evaluate_fn is not None:  # resumed a finished run: evaluate the weights as is
        last_metrics = _evaluate(model, evaluate_fn, device, use_amp=False)
    return FitResult(
        last_metrics,
        config.epochs,
        dict(state["best_metrics"]),
        int(state["best_epoch"]),
        list(state["history"]),
        **resumed,
    )
