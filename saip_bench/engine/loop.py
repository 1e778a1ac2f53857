"""The fine-tuning engine every task trains with.

One loop for all tasks: AdamW or SGD, layer-wise lr decay for ViTs, linear warm-up then cosine or step decay
(per step), bf16 autocast on CUDA, atomic ``last.pt`` / ``best.pt`` checkpoints with ``resume``, progress
through a callback, periodic evaluation and best/last selection. The task supplies the model, the data,
a ``step_fn`` that returns named losses and an ``evaluate_fn`` that returns metrics.

Under ``torchrun`` (an initialised process group) the model is wrapped in DistributedDataParallel and only
rank 0 writes checkpoints; the task's loader must shard its data (e.g. a DistributedSampler).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from saip_bench.errors import CheckpointError, ConfigError
from saip_bench.io import atomic_path, atomic_write_json

log = logging.getLogger(__name__)

#: Progress callback: ``progress(description, completed, total)``; the CLI draws it as a rich bar.
#: ``total`` may be 0 when unknown. Library code reports progress only through this, it never prints.
ProgressFn = Callable[[str, int, int], None]

StepFn = Callable[[nn.Module, Any], dict[str, torch.Tensor]]
EvaluateFn = Callable[[nn.Module], dict[str, float]]


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
        for key in ("betas", "milestones"):
            if key in kwargs and kwargs[key] is not None:
                kwargs[key] = tuple(kwargs[key])
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
        return config


@dataclass
class FitResult:
    """Outcome of :func:`fit`: the selected epoch's metrics and the training history."""

    metrics: dict[str, float]
    selected_epoch: int
    best_metrics: dict[str, float] = field(default_factory=dict)
    best_epoch: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    resumed_from: int = 0


_BLOCK = re.compile(r"(?<![0-9]\.)blocks\.(\d+)\.")
_EMBED = ("cls_token", "pos_embed", "patch_embed", "reg_token", "dist_token", "mask_token")


def _no_decay(name: str, param: torch.Tensor) -> bool:
    return param.ndim <= 1 or any(token in name for token in _EMBED[:2] + _EMBED[3:])


def build_param_groups(
    model: nn.Module,
    *,
    lr: float,
    weight_decay: float,
    layer_decay: float | None = None,
    backbone_lr_mult: float = 1.0,
    backbone_prefix: str = "backbone.",
) -> list[dict[str, Any]]:
    """Optimizer parameter groups with per-group ``lr`` and ``weight_decay``.

    Parameters whose name starts with ``backbone_prefix`` get ``lr * backbone_lr_mult``; with ``layer_decay``
    a ViT's parameters are further scaled by ``layer_decay ** (L + 1 - layer_id)``, where the embeddings are
    layer 0, ``blocks.i`` is layer ``i + 1`` and everything after the blocks is layer ``L + 1``. Backbones
    without top-level ``blocks.N`` (e.g. TinyViT's ``stages.i.blocks.j``) get no layer decay. Frozen
    parameters (``requires_grad`` False) are left out.
    """
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    block_ids = [
        int(m.group(1)) for n, _ in named if n.startswith(backbone_prefix) and (m := _BLOCK.search(n))
    ]
    num_layers = max(block_ids) + 1 if block_ids else 0
    use_ld = layer_decay is not None and layer_decay != 1.0 and num_layers > 0
    groups: dict[tuple[float, float], dict[str, Any]] = {}
    for name, param in named:
        scale = 1.0
        if name.startswith(backbone_prefix):
            scale = backbone_lr_mult
            if use_ld:
                match = _BLOCK.search(name)
                if match:
                    layer = int(match.group(1)) + 1
                elif any(token in name for token in _EMBED):
                    layer = 0
                else:
                    layer = num_layers + 1
                scale *= layer_decay ** (num_layers + 1 - layer)  # type: ignore[operator]
        wd = 0.0 if _no_decay(name, param) else weight_decay
        group = groups.setdefault(
            (scale, wd), {"params": [], "lr": lr * scale, "weight_decay": wd, "lr_scale": scale}
        )
        group["params"].append(param)
    return list(groups.values())


def lr_factor(step: int, *, total_steps: int, steps_per_epoch: int, config: EngineConfig) -> float:
    """Multiplier of the peak lr at optimizer step ``step`` (0-based): warm-up, then the schedule."""
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


def make_optimizer(groups: list[dict[str, Any]], config: EngineConfig) -> torch.optim.Optimizer:
    """AdamW or SGD over prepared parameter groups."""
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov)
    return torch.optim.AdamW(groups, lr=config.lr, betas=config.betas)


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
) -> torch.utils.data.DataLoader:
    """The training loader every task uses: seeded shuffling, or a seeded ``DistributedSampler`` under DDP.

    Args:
        dataset: the training set.
        batch_size: the recipe's batch size (per process); capped at the set's size, at least ``min_batch``
            (2 where BatchNorm or in-batch contrastive losses need pairs).
        seed: shuffling seed (the request's), so a run repeats and ranks agree.
        num_workers: the recipe's worker count, capped by :func:`loader_workers`.
        device: pinned memory on CUDA.
        collate_fn: batch assembly for samples that are not plain tensors (mm data samples).
    """
    from torch.utils.data import DataLoader, DistributedSampler

    distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
    sampler = DistributedSampler(dataset, shuffle=True, seed=seed, drop_last=True) if distributed else None
    return DataLoader(
        dataset,
        batch_size=max(min_batch, min(int(batch_size), len(dataset))),
        shuffle=sampler is None,
        sampler=sampler,
        drop_last=True,
        num_workers=loader_workers(num_workers),
        pin_memory=torch.device(device).type == "cuda",
        generator=torch.Generator().manual_seed(seed),
        collate_fn=collate_fn,
    )


def move_to(batch: Any, device: torch.device) -> Any:
    """Move every tensor in a (nested) batch to ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: move_to(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(move_to(v, device) for v in batch)
    return batch


def _is_main() -> bool:
    return not (torch.distributed.is_available() and torch.distributed.is_initialized()) or (
        torch.distributed.get_rank() == 0
    )


def _save(path: Path, obj: dict[str, Any]) -> None:
    if _is_main():
        with atomic_path(path) as tmp:
            torch.save(obj, tmp)


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def _better(value: float, best: float | None, rule: str) -> bool:
    return best is None or (value > best if rule == "max" else value < best)


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
) -> FitResult:
    """Train ``model`` and return the selected epoch's metrics; the model ends holding the selected weights.

    Args:
        model: the task model (backbone under attribute ``backbone`` plus head), already on ``device``.
        train_loader: an iterable of batches, re-iterated every epoch; ``len()`` is used when available.
            If it has a ``sampler``/``batch_sampler`` with ``set_epoch``, that is called every epoch.
        step_fn: ``step_fn(model, batch) -> {"loss": scalar, other named terms...}``; the batch has been
            moved to ``device`` and runs under autocast.
        config: the hyper-parameters.
        run_dir: folder for ``last.pt``, ``best.pt`` and ``history.json``.
        device: where to train.
        evaluate_fn: ``evaluate_fn(model) -> metrics``; called in eval mode under ``torch.no_grad`` every
            ``eval_every`` epochs and after the last one.
        primary_metric: metric key used for ``select: best`` (required then).
        best: ``"max"`` or ``"min"``: which direction of the primary metric is better.
        param_groups: prepared optimizer groups; default :func:`build_param_groups` from ``config``.
        resume: continue from ``run_dir/last.pt`` if present (the config must match).
        progress: ``progress(description, done_steps, total_steps)`` callback.
        seed: when given, training draws from torch's global RNG (dropout, drop-path, mmdet's samplers,
            flips drawn with ``torch.rand``) seeded with it, forked so the caller's RNG state is untouched:
            the run repeats on the same machine.

    Raises:
        CheckpointError: ``resume`` finds a checkpoint written with another config, or an unreadable one.
        ConfigError: ``select: best`` without ``evaluate_fn``/``primary_metric``.
    """
    device = torch.device(device)
    if seed is not None:
        forked = []
        if device.type == "cuda":
            forked = [device.index if device.index is not None else torch.cuda.current_device()]
        with torch.random.fork_rng(devices=forked):
            torch.manual_seed(seed)
            return fit(
                model, train_loader, step_fn, config=config, run_dir=run_dir, device=device,
                evaluate_fn=evaluate_fn, primary_metric=primary_metric, best=best, param_groups=param_groups,
                resume=resume, progress=progress,
            )  # fmt: skip
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
    config_record = json.loads(json.dumps(dataclasses.asdict(config)))

    state = {"epoch": 0, "step": 0, "history": [], "best_value": None, "best_epoch": 0, "best_metrics": {}}
    last_path, best_path = run_dir / "last.pt", run_dir / "best.pt"
    if resume and last_path.is_file():
        try:
            ckpt = torch.load(last_path, map_location="cpu", weights_only=True)
        except Exception as err:
            raise CheckpointError(
                f"{last_path}: cannot resume from it ({type(err).__name__}: {err})"
            ) from None
        if ckpt.get("config") != config_record:
            raise CheckpointError(
                f"{last_path}: written with another training config; use --force to restart"
            )
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        state.update({k: ckpt[k] for k in state})
        log.info("resuming from %s at epoch %d", last_path, state["epoch"])
    resumed_from = int(state["epoch"])

    train_model: nn.Module = model
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        ids = [device.index] if device.type == "cuda" and device.index is not None else None
        train_model = nn.parallel.DistributedDataParallel(model, device_ids=ids, find_unused_parameters=True)
    use_amp = config.amp and device.type == "cuda"
    step = int(state["step"])
    last_metrics: dict[str, float] = {}

    for epoch in range(int(state["epoch"]), config.epochs):
        for obj in (getattr(train_loader, "batch_sampler", None), getattr(train_loader, "sampler", None)):
            if hasattr(obj, "set_epoch"):
                obj.set_epoch(epoch)
        train_model.train()
        sums: dict[str, float] = {}
        count = 0
        for i, batch in enumerate(train_loader):
            if i >= steps_per_epoch:
                break
            factor = lr_factor(step, total_steps=total_steps, steps_per_epoch=steps_per_epoch, config=config)
            for group in optimizer.param_groups:
                group["lr"] = config.lr * group["lr_scale"] * factor
            batch = move_to(batch, device)
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_amp):
                losses = step_fn(train_model, batch)
            loss = losses["loss"]
            if not torch.isfinite(loss):
                raise FloatingPointError(f"non-finite loss at epoch {epoch + 1} step {i + 1}: {loss.item()}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            step += 1
            count += 1
            for key, value in losses.items():
                sums[key] = sums.get(key, 0.0) + float(value.detach())
            if progress is not None:
                progress(f"epoch {epoch + 1}/{config.epochs}", step, total_steps)
        record: dict[str, float] = {"epoch": epoch + 1, **{k: v / max(1, count) for k, v in sums.items()}}
        log.debug("epoch %d: %s", epoch + 1, record)
        is_last = epoch + 1 == config.epochs
        if evaluate_fn is not None and (
            is_last or (config.eval_every and (epoch + 1) % config.eval_every == 0)
        ):
            model.eval()
            with (
                torch.no_grad(),
                torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_amp),
            ):
                metrics = {k: float(v) for k, v in evaluate_fn(model).items()}
            model.train()
            record.update(metrics)
            last_metrics = metrics
            log.info("epoch %d: %s", epoch + 1, ", ".join(f"{k} {v:.2f}" for k, v in metrics.items()))
            if primary_metric is not None and _better(metrics[primary_metric], state["best_value"], best):
                state.update(best_value=metrics[primary_metric], best_epoch=epoch + 1, best_metrics=metrics)
                if config.select == "best":
                    _save(
                        best_path,
                        {"model": _unwrap(model).state_dict(), "epoch": epoch + 1, "metrics": metrics},
                    )
        state["history"].append(record)
        state.update(epoch=epoch + 1, step=step)
        _save(
            last_path,
            {
                **state,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "config": config_record,
            },
        )
        if _is_main():
            atomic_write_json(run_dir / "history.json", state["history"])

    if config.select == "best" and best_path.is_file():
        model.load_state_dict(torch.load(best_path, map_location="cpu", weights_only=True)["model"])
        return FitResult(
            dict(state["best_metrics"]),
            int(state["best_epoch"]),
            dict(state["best_metrics"]),
            int(state["best_epoch"]),
            list(state["history"]),
            resumed_from,
        )
    if (
        not last_metrics and evaluate_fn is not None
    ):  # resumed a finished run: evaluate the weights as they are
        model.eval()
        with torch.no_grad():
            last_metrics = {k: float(v) for k, v in evaluate_fn(model).items()}
    return FitResult(
        last_metrics,
        config.epochs,
        dict(state["best_metrics"]),
        int(state["best_epoch"]),
        list(state["history"]),
        resumed_from,
    )
