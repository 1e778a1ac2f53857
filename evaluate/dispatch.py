"""From ``saip evaluate``'s arguments to stored records: locate data, resolve recipes, skip, run, record.

For each requested dataset and scale: find the dataset folder under ``--data-root``, resolve the recipe for
the protocol and budget, load a fresh backbone at the scaled input size, skip if the workspace's results store
already has a record with the same backbone digest + dataset + protocol + config digest + scale (unless
``force``), otherwise run the task adapter, time it and add one :class:`EvalRecord`.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from saip_bench.datasets import DATASETS, DatasetSpec
from saip_bench.engine import ProgressFn
from saip_bench.engine.logging import run_log
from saip_bench.errors import ConfigError, DataFormatError, Interrupted
from saip_bench.evaluate.adapter import EvalRequest
from saip_bench.evaluate.protocols import config_digest as recipe_digest
from saip_bench.evaluate.protocols import datasets_for_task, load_recipe, scaled_size
from saip_bench.io import atomic_write_json, git_revision, require_writable, undo_on_error

if TYPE_CHECKING:
    from saip_bench.results import EvalRecord

log = logging.getLogger(__name__)

#: The resolved recipe of a run, in its run folder.
RECIPE_FILE = "recipe.json"


@dataclass
class Outcome:
    """What happened to one (dataset, scale) evaluation: ``status`` is ``"done"``, ``"skipped"`` or
    ``"missing"`` (no dataset folder under the data root; only when evaluating ``all``)."""

    dataset: str
    protocol: str
    scale: float
    status: str
    run_dir: Path | None = None
    record: EvalRecord | None = None
    message: str = ""


@dataclass
class _Plan:
    """One dataset's evaluation, resolved before anything is written."""

    spec: DatasetSpec
    protocol: str
    data_dir: Path
    recipe: dict
    base_size: tuple[int, ...]
    seed: int


def resolve_device(device: str) -> str:
    """``auto``: this process's CUDA device if any (``LOCAL_RANK`` under torchrun), else ``cpu``."""
    import torch

    if device != "auto":
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError(f"device {device!r} requested but CUDA is not available")
        return device
    if torch.cuda.is_available():
        return f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
    return "cpu"


def find_dataset_dir(data_root: Path, info: DatasetSpec) -> Path:
    """The dataset's folder under ``data_root`` by ``saip data check``'s rules (usual folder name, then
    aliases), or ``data_root`` itself when it is that folder; a DataFormatError naming what was looked for."""
    from saip_bench.data_check import locate

    data_root = Path(data_root)
    if not data_root.is_dir():
        raise DataFormatError(data_root, "data root is not a folder")
    found = locate(info, data_root)
    if found is not None:
        return found
    if data_root.name in (info.folder, *(Path(a).name for a in info.aliases)):
        return data_root
    tried = ", ".join((info.folder, *info.aliases))
    raise DataFormatError(data_root, f"no {info.title} folder found (looked for: {tried})")


def _run_dir_name(backbone_name: str, digest: str, protocol: str, budget: str, cfg: str, scale: float) -> str:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in backbone_name)[:48]
    return f"{safe}-{digest[:10]}-{protocol}-{budget}-{cfg[:10]}-x{scale:g}"


def evaluate(
    *,
    task: str,
    dataset: str,
    backbone: str,
    data_root: Path,
    workspace: Path,
    protocol: str | None = None,
    budget: str = "full",
    scales: Sequence[float] = (1.0,),
    force: bool = False,
    resume: bool = False,
    device: str = "auto",
    recipe: Path | None = None,
    overrides: Sequence[str] = (),
    progress: ProgressFn | None = None,
) -> list[Outcome]:
    """Run (or skip) every requested evaluation and record the finished ones.

    Args:
        task: task name (``"reid"``, ``"attribute"``).
        dataset: a dataset of that task, or ``"all"`` (datasets without a folder under ``data_root`` are
            then reported as ``missing`` instead of failing).
        backbone: backbone spec for :func:`saip_bench.backbones.load_backbone`.
        data_root: the folder holding the datasets (what ``saip data check`` scans).
        workspace: the workspace: ``results.sqlite`` and ``runs/``.
        protocol: ``finetune``, ``linear`` or ``frozen``; default: the dataset's first protocol.
        budget: ``full``, ``short`` or ``smoke``.
        scales: multiples of the recipe's input size; each is one evaluation and one record.
        force: run even if an identical record exists, starting over (an unfinished run's ``last.pt`` is
            removed; without ``force`` or ``resume`` such a checkpoint is an error naming it).
        resume: continue an interrupted fine-tuning from its run folder's last checkpoint, exactly; the
            record says so and its ``duration_s`` sums every attempt (``attempts.json``).
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        recipe: a recipe file to use instead of the registry's (e.g. the 384x128 one).
        overrides: ``key=value`` recipe overrides applied last (``train.epochs=1``).
        progress: progress callback passed to the adapter.

    Returns:
        One :class:`Outcome` per (dataset, scale), in order.
    """
    import saip_bench
    from saip_bench.backbones import load_backbone
    from saip_bench.backbones.wrapper import is_vit
    from saip_bench.results import EvalRecord, open_workspace_store, utc_now_iso
    from saip_bench.results.attempts import ATTEMPTS_FILE, CHECKPOINT_FILE, Attempts, prepare_run_dir

    names = datasets_for_task(task) if dataset == "all" else [dataset]
    specs: list[DatasetSpec] = []
    for name in names:
        spec = DATASETS.get(name)
        if spec.task != task:
            raise ConfigError(f"dataset {name!r} belongs to task {spec.task!r}, not {task!r}")
        if protocol is not None and protocol not in spec.protocols:
            raise ConfigError(f"{name} supports protocols {', '.join(spec.protocols)}, not {protocol!r}")
        specs.append(spec)
    if not scales or any(not (s > 0) for s in scales):
        raise ConfigError(f"scales must be positive numbers, got {list(scales)}")
    if not Path(data_root).is_dir():  # fail even for `all`, where a single missing dataset only warns
        raise DataFormatError(data_root, "data root is not a folder")
    dev = resolve_device(device)
    # Every dataset folder and recipe is resolved before the workspace is touched: a bad recipe key or a
    # missing folder is refused with nothing written.
    plans: list[_Plan | list[Outcome]] = []  # in order: a plan to run, or a dataset's "missing" outcomes
    for spec in specs:
        proto = protocol or spec.default_protocol
        try:
            data_dir = find_dataset_dir(data_root, spec)
        except DataFormatError as err:
            if dataset != "all":
                raise
            log.warning("%s: skipped, %s", spec.name, err)
            plans.append([Outcome(spec.name, proto, s, "missing", message=str(err)) for s in scales])
            continue
        recipe_file = Path(recipe) if recipe is not None else spec.recipe_path()
        resolved = load_recipe(recipe_file, proto, budget, task=spec.task, overrides=overrides)
        base_size = tuple(int(v) for v in resolved.get("img_size", (256, 128)))
        if len(base_size) != 2:
            raise ConfigError(f"{recipe_file}: img_size must be [H, W]")
        plans.append(_Plan(spec, proto, data_dir, resolved, base_size, int(resolved.get("seed", 0))))
    # A workspace this call creates is taken back whole if it fails before recording anything, so a
    # refusal in a fresh workspace leaves nothing; an existing one keeps everything but the failed run.
    fresh_workspace = not Path(workspace).exists()
    is_main = int(os.environ.get("RANK", 0)) == 0
    outcomes: list[Outcome] = []
    try:
        require_writable(workspace)  # a read-only workspace is a disk fault naming it, not a database error
        store = open_workspace_store(workspace)
        commit = git_revision()
        for plan in plans:
            if isinstance(plan, list):
                outcomes += plan
                continue
            spec, proto, data_dir, resolved, base_size, seed = (
                plan.spec,
                plan.protocol,
                plan.data_dir,
                plan.recipe,
                plan.base_size,
                plan.seed,
            )
            config_digest = recipe_digest(resolved)
            for scale in scales:
                scale = float(scale)
                model = load_backbone(backbone, img_size=base_size, device=dev)  # type: ignore[arg-type]
                # set_img_size needs ViT sizes in whole patches and other backbones' in multiples of 16.
                step = int(model.patch_size) if is_vit(model.model) else 16
                size = scaled_size(base_size, scale, step)  # type: ignore[arg-type]
                if size != base_size:
                    model.set_img_size(size)
                key = dict(
                    backbone_digest=model.digest,
                    dataset=spec.name,
                    protocol=proto,
                    config_digest=config_digest,
                    scale=scale,
                )
                run_dir = (
                    Path(workspace)
                    / "runs"
                    / spec.name
                    / _run_dir_name(model.name, model.digest, proto, budget, config_digest, scale)
                )
                if not force and store.has(**key):
                    log.info(
                        "%s %s x%g: already recorded for %s, skipped (use --force to rerun)",
                        spec.name,
                        proto,
                        scale,
                        model.name,
                    )
                    outcomes.append(Outcome(spec.name, proto, scale, "skipped", run_dir))
                    continue
                resumed = prepare_run_dir(run_dir, resume=resume, force=force, write=is_main)
                # A refusal before a result exists (bad data, a disk fault) takes back what this attempt
                # wrote: a new run folder goes, an existing one is left as it was unless its checkpoint moved.
                with undo_on_error(
                    run_dir, restore=(RECIPE_FILE, ATTEMPTS_FILE), progress=CHECKPOINT_FILE, enabled=is_main
                ):
                    run_dir.mkdir(parents=True, exist_ok=True)
                    if is_main:
                        extra = {
                            "img_size": list(size),
                            "scale": scale,
                            "backbone": backbone,
                            "data_dir": str(data_dir),
                        }
                        atomic_write_json(run_dir / RECIPE_FILE, {**resolved, **extra})
                    request = EvalRequest(
                        task=task,
                        dataset=spec.name,
                        data_dir=data_dir,
                        protocol=proto,
                        budget=budget,
                        recipe=resolved,
                        img_size=size,
                        run_dir=run_dir,
                        scale=scale,
                        device=dev,
                        seed=seed,
                        resume=resume,
                        progress=progress,
                        primary_metric=spec.primary_metric,
                        best=spec.best,
                    )
                    adapter = spec.load_adapter()
                    # Times every attempt; the run's log records go to its train.log, also for probes.
                    with (
                        Attempts(run_dir, resume=resumed, write=is_main) as attempts,
                        run_log(run_dir, enabled=is_main),
                    ):
                        log.info("%s %s x%g %s on %s: running", spec.name, proto, scale, size, dev)
                        result = adapter.run(request, model)
                started, duration = attempts.started_at, attempts.total_s
                record = EvalRecord(
                    backbone_digest=model.digest,
                    backbone_name=model.name,
                    pretrain_method=str(model.meta.get("method", "unknown")),
                    task=task,
                    dataset=spec.name,
                    protocol=proto,
                    budget=budget,
                    metrics=dict(result.metrics),
                    primary_metric=result.primary_metric,
                    primary_value=result.primary_value,
                    config_digest=config_digest,
                    seed=seed,
                    package_version=saip_bench.__version__,
                    git_revision=commit,
                    duration_s=duration,
                    started_at=started,
                    ended_at=utc_now_iso(),
                    scale=scale,
                    resumed=resumed,
                    resumed_from_step=int(result.extra.get("resumed_from_step", 0)),
                )
                if is_main:
                    record.id = store.add(record)
                outcomes.append(Outcome(spec.name, proto, scale, "done", run_dir, record))
    except Exception as err:
        nothing_recorded = not any(outcome.status == "done" for outcome in outcomes)
        if fresh_workspace and is_main and nothing_recorded and not isinstance(err, Interrupted):
            shutil.rmtree(workspace, ignore_errors=True)
        raise
    return outcomes
