"""From ``saip evaluate``'s arguments to stored records: locate data, resolve recipes, skip, run, record.

For each requested dataset: find the dataset folder under ``--data-root``, resolve the recipe for the
protocol and budget, load a fresh backbone at the recipe's input size, skip if the workspace's results store
already has a record with the same backbone digest + dataset + protocol + config digest + scale + training
scale (unless ``force``), otherwise run the task adapter, time it and add one :class:`EvalRecord` per scale.

Scales (``--scales``) are a probe of one model: it is trained (or, for ``frozen``, built) once at the recipe's
size and evaluated at every listed scale, one record each, all naming the same run folder (``train_run``,
``train_scale`` 1). ``train_per_scale`` trains a model at each scale's size instead, one run per scale.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from saip_bench.datasets import DATASETS, DatasetSpec
from saip_bench.engine import ProgressFn
from saip_bench.engine.logging import run_log
from saip_bench.errors import ConfigError, DataFormatError, Interrupted
from saip_bench.evaluate.adapter import EvalRequest
from saip_bench.evaluate.protocols import config_digest as recipe_digest
from saip_bench.evaluate.protocols import datasets_for_task, load_recipe, scaled_size
from saip_bench.evaluate.tracking import run_tracked
from saip_bench.io import atomic_write_json, git_revision, network_filesystem, require_writable, undo_on_error

if TYPE_CHECKING:
    from saip_bench.results import EvalRecord, ResultsStore

log = logging.getLogger(__name__)

#: The resolved recipe of a run, in its run folder.
RECIPE_FILE = "recipe.json"


#: Statuses of an :class:`Outcome` that ran nothing: already recorded, no folder under the data root (only
#: when evaluating ``all``), or the protocol is not one the dataset has (only for ``--task all``).
NOT_RUN = ("skipped", "missing", "n/a")


@dataclass
class Outcome:
    """What happened to one (backbone, dataset, scale) evaluation: ``status`` is ``"done"`` or one of
    :data:`NOT_RUN` (``"skipped"``: already recorded; ``"missing"``: no dataset folder under the data root, or
    an optional package the task needs is not installed; ``"n/a"``: the dataset has no such protocol)."""

    dataset: str
    protocol: str
    scale: float
    status: str
    run_dir: Path | None = None
    record: EvalRecord | None = None
    message: str = ""
    backbone: str = ""


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


def select_datasets(task: str, dataset: str, protocol: str | None) -> list[tuple[DatasetSpec, str | None]]:
    """The datasets ``saip evaluate --task TASK --dataset DATASET`` names, each with why it cannot run.

    ``task`` may be ``"all"`` (every evaluated dataset of every task; ``dataset`` then is ``"all"`` or any
    dataset's name). The reason is None for a dataset to run, else ``"n/a: ..."`` (``--task all`` with a
    protocol the dataset lacks) or ``"missing: ..."`` (an optional package its task needs is absent), which
    only a selection of ``all`` tolerates: a dataset named on its own is refused instead.
    """
    from saip_bench.mm.available import missing_mm

    if task == "all":
        names = list(DATASETS.names()) if dataset == "all" else [dataset]
        names = [n for n in names if DATASETS.get(n).protocols]
    else:
        names = datasets_for_task(task) if dataset == "all" else [dataset]
    chosen: list[tuple[DatasetSpec, str | None]] = []
    for name in names:
        spec = DATASETS.get(name)
        if task != "all" and spec.task != task:
            raise ConfigError(f"dataset {name!r} belongs to task {spec.task!r}, not {task!r}")
        why = None
        if protocol is not None and protocol not in spec.protocols:
            if dataset != "all" or task != "all":
                raise ConfigError(f"{name} supports protocols {', '.join(spec.protocols)}, not {protocol!r}")
            why = f"n/a: {name} has no {protocol} protocol ({', '.join(spec.protocols)})"
        missing = missing_mm(*spec.needs) if spec.needs else []
        if why is None and missing:
            text = f"{name} needs {', '.join(missing)} (README, 'The OpenMMLab stack')"
            if dataset != "all":
                raise ConfigError(text)
            why = f"missing: {text}"
        chosen.append((spec, why))
    return chosen


#: The input scale the scale probe trains at: the recipe's own size.
PROBE_TRAIN_SCALE = 1.0


def trained_scale(protocol: str, scale: float, train_scale: float) -> float:
    """The ``train_scale`` of a record at ``scale``: ``frozen`` trains nothing, so it is the scale itself."""
    return float(scale) if protocol == "frozen" else float(train_scale)


def _run_dir_name(backbone_name: str, digest: str, protocol: str, budget: str, cfg: str, scale: float) -> str:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in backbone_name)[:48]
    return f"{safe}-{digest[:10]}-{protocol}-{budget}-{cfg[:10]}-x{scale:g}"


@dataclass(frozen=True)
class BackboneIdentity:
    """What names a backbone in the records: its shown name and the digest of its weights."""

    spec: str
    name: str
    digest: str
    method: str


def backbone_identity(spec: str, seed: int | None = None) -> BackboneIdentity:
    """Load the backbone ``spec`` names once on the CPU for its name and digest; a bad spec is the loader's
    one-line error (a missing file, an unknown architecture, a foreign checkpoint). ``seed``: the run's seed,
    which initialises a ``random:NAME`` (see :func:`saip_bench.backbones.load_backbone`)."""
    from saip_bench.backbones import load_backbone

    model = load_backbone(spec, device="cpu", seed=seed)
    return BackboneIdentity(spec, model.name, model.digest, str(model.meta.get("method", "unknown")))


def records_only_default() -> bool:
    """Whether this process writes record files only, never the SQLite store (``SAIP_RECORDS_ONLY=1``: set
    by the campaign launchers for their jobs, which may run on other machines over a network filesystem)."""
    return os.environ.get(RECORDS_ONLY_ENV, "") not in ("", "0")


#: Environment variable that makes :func:`evaluate` write record files only (:func:`records_only_default`).
RECORDS_ONLY_ENV = "SAIP_RECORDS_ONLY"


def evaluate(
    *,
    task: str,
    dataset: str,
    backbone: str | Sequence[str],
    data_root: Path,
    workspace: Path,
    protocol: str | None = None,
    budget: str = "full",
    scales: Sequence[float] = (1.0,),
    train_per_scale: bool = False,
    force: bool = False,
    resume: bool = False,
    device: str = "auto",
    recipe: Path | None = None,
    overrides: Sequence[str] = (),
    progress: ProgressFn | None = None,
    records_only: bool | None = None,
) -> list[Outcome]:
    """Run (or skip) every requested evaluation and record the finished ones.

    Every finished evaluation writes one record file (``<ws>/records/``, atomically: see
    :mod:`saip_bench.results.files`); unless ``records_only``, the workspace's SQLite store then ingests it.

    Args:
        task: task name (``"reid"``, ``"attribute"``), or ``"all"``: every task.
        dataset: a dataset of that task, or ``"all"`` (datasets without a folder under ``data_root`` are
            then reported as ``missing`` instead of failing).
        backbone: backbone spec(s) for :func:`saip_bench.backbones.load_backbone`; each is evaluated on every
            dataset. All are loaded once before anything runs, so a bad one is refused first.
        data_root: the folder holding the datasets (what ``saip data check`` scans).
        workspace: the workspace: ``results.sqlite``, ``records/`` and ``runs/``.
        protocol: ``finetune``, ``linear`` or ``frozen``; default: the dataset's first protocol.
        budget: ``full``, ``short`` or ``smoke``.
        scales: multiples of the recipe's input size at which to evaluate, one record each: by default one
            model trained at the recipe's size (x1) evaluated at every scale (the scale probe).
        train_per_scale: train a model at each scale's size instead (one run per scale).
        force: run even if an identical record exists, starting over (an unfinished run's ``last.pt`` is
            removed; without ``force`` or ``resume`` such a checkpoint is an error naming it).
        resume: continue an interrupted fine-tuning from its run folder's last checkpoint, exactly; the
            record says so and its ``duration_s`` sums every attempt (``attempts.json``). A run without a
            checkpoint starts from the beginning.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        recipe: a recipe file to use instead of the registry's (e.g. the 384x128 one).
        overrides: ``key=value`` recipe overrides applied last (``train.epochs=1``).
        progress: progress callback passed to the adapter.
        records_only: write record files only and decide "already recorded" from them, never opening the
            SQLite store (a cluster job); default :func:`records_only_default`.

    Returns:
        One :class:`Outcome` per (backbone, dataset, scale), in order.
    """
    from saip_bench.results import open_workspace_store

    if records_only is None:
        shared = network_filesystem(workspace)
        records_only = records_only_default() or shared is not None
        if shared:
            log.info("%s is on %s: results go to record files; saip report takes them in", workspace, shared)
    chosen = select_datasets(task, dataset, protocol)
    if not scales or any(not (s > 0) for s in scales):
        raise ConfigError(f"scales must be positive numbers, got {list(scales)}")
    if not Path(data_root).is_dir():  # fail even for `all`, where a single missing dataset only warns
        raise DataFormatError(data_root, "data root is not a folder")
    specs = [backbone] if isinstance(backbone, str) else list(dict.fromkeys(backbone))
    if not specs:
        raise ConfigError("no backbone given")
    dev = resolve_device(device)
    # Every backbone, dataset folder and recipe is resolved before the workspace is touched: a bad recipe key,
    # a missing folder or a backbone that does not load is refused with nothing written.
    for spec_text in specs:
        backbone_identity(spec_text)
    # In order: a plan to run, or a dataset's outcomes that cannot run.
    plans: list[_Plan | list[Outcome]] = []
    for spec, why in chosen:
        proto = protocol or spec.default_protocol
        if why is not None:
            status, _, message = why.partition(": ")
            log.warning("%s: skipped, %s", spec.name, message)
            plans.append([Outcome(spec.name, proto, s, status, message=message) for s in scales])
            continue
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
        store = None
        if not records_only:
            store = open_workspace_store(workspace)
            if is_main:
                store.ingest(workspace)  # records other processes (cluster jobs) left as files
        else:
            for sub in ("runs", "records"):
                (Path(workspace) / sub).mkdir(parents=True, exist_ok=True)
        commit = git_revision()
        for spec_text in specs:
            for plan in plans:
                if isinstance(plan, list):
                    outcomes += [replace(outcome, backbone=spec_text) for outcome in plan]
                    continue
                runs = (
                    [(float(s), (float(s),)) for s in scales]
                    if train_per_scale
                    else [(PROBE_TRAIN_SCALE, tuple(float(s) for s in scales))]
                )
                for train_scale, eval_scales in runs:
                    outcomes += _run_one(
                        plan,
                        train_scale,
                        eval_scales,
                        spec_text,
                        task=plan.spec.task,
                        budget=budget,
                        workspace=Path(workspace),
                        store=store,
                        force=force,
                        resume=resume,
                        dev=dev,
                        progress=progress,
                        commit=commit,
                        is_main=is_main,
                    )
    except Exception as err:
        nothing_recorded = not any(outcome.status == "done" for outcome in outcomes)
        if fresh_workspace and is_main and nothing_recorded and not isinstance(err, Interrupted):
            shutil.rmtree(workspace, ignore_errors=True)
        raise
    return outcomes


def _run_one(
    plan: _Plan,
    train_scale: float,
    eval_scales: tuple[float, ...],
    backbone: str,
    *,
    task: str,
    budget: str,
    workspace: Path,
    store: ResultsStore | None,
    force: bool,
    resume: bool,
    dev: str,
    progress: ProgressFn | None,
    commit: str | None,
    is_main: bool,
) -> list[Outcome]:
    """One run: a model trained at ``train_scale`` x the recipe's size, evaluated at each of ``eval_scales``;
    the scales already recorded are skipped (all of them: nothing runs), the others recorded, one each."""
    import saip_bench
    from saip_bench.backbones import load_backbone
    from saip_bench.backbones.wrapper import is_vit
    from saip_bench.results import EvalRecord, utc_now_iso
    from saip_bench.results.attempts import ATTEMPTS_FILE, CHECKPOINT_FILE, Attempts, prepare_run_dir
    from saip_bench.results.files import find_record, write_record_file

    spec, proto, data_dir, resolved, base_size, seed = (
        plan.spec,
        plan.protocol,
        plan.data_dir,
        plan.recipe,
        plan.base_size,
        plan.seed,
    )
    config_digest = recipe_digest(resolved)
    # random:NAME is initialised with the run's seed: seeds repeat the init too, not only the head.
    model = load_backbone(backbone, img_size=base_size, device=dev, seed=seed)  # type: ignore[arg-type]
    # set_img_size needs ViT sizes in whole patches and other backbones' in multiples of 16.
    step = int(model.patch_size) if is_vit(model.model) else 16
    sizes = {s: scaled_size(base_size, s, step) for s in (train_scale, *eval_scales)}  # type: ignore[arg-type]
    size = sizes[train_scale]
    if size != base_size:
        model.set_img_size(size)
    run_dir = (
        workspace
        / "runs"
        / spec.name
        / _run_dir_name(model.name, model.digest, proto, budget, config_digest, train_scale)
    )

    def key(scale: float) -> dict:
        return dict(
            backbone_digest=model.digest,
            dataset=spec.name,
            protocol=proto,
            config_digest=config_digest,
            scale=scale,
            train_scale=trained_scale(proto, scale, train_scale),
        )

    def is_recorded(scale: float) -> bool:
        if store is not None:
            return store.has(**key(scale))
        return find_record(workspace, **key(scale)) is not None

    todo = list(eval_scales) if force else [s for s in eval_scales if not is_recorded(s)]
    skipped = [
        Outcome(spec.name, proto, s, "skipped", run_dir, backbone=backbone)
        for s in eval_scales
        if s not in todo
    ]
    for out in skipped:
        log.info(
            "%s %s x%g: already recorded for %s, skipped (use --force to rerun)",
            spec.name,
            proto,
            out.scale,
            model.name,
        )
    if not todo:
        return skipped
    probes = tuple((s, sizes[s]) for s in todo if abs(s - train_scale) > 1e-9)
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
                "scale": train_scale,
                "probe_scales": {f"{s:g}": list(ps) for s, ps in probes},
                "backbone": backbone,
                "backbone_seed": model.meta.get("seed"),  # a random init's seed (None: trained weights)
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
            scale=train_scale,
            probe_scales=probes,
            device=dev,
            seed=seed,
            resume=resume,
            progress=progress,
            primary_metric=spec.primary_metric,
            best=spec.best,
        )
        adapter = spec.load_adapter()
        # Times every attempt; the run's log records go to its train.log, also for probes.
        with Attempts(run_dir, resume=resumed, write=is_main) as attempts, run_log(run_dir, enabled=is_main):
            shown = ", ".join(f"x{s:g}" for s in todo)
            log.info(
                "%s %s x%g %s on %s: running (evaluated at %s)",
                spec.name,
                proto,
                train_scale,
                size,
                dev,
                shown,
            )
            result = run_tracked(adapter, request, model, enabled=is_main)  # and to train.tracker, if any
            by_scale = {**result.by_scale, train_scale: result.metrics}
            lacking = [f"x{s:g}" for s in todo if s not in by_scale]
            if lacking:  # an adapter not built on the Task template that ignores EvalRequest.probe_scales
                raise ConfigError(
                    f"the {task} adapter returned no metrics at {', '.join(lacking)} (EvalResult.by_scale); "
                    "use --train-per-scale with it"
                )
    ended = utc_now_iso()
    outcomes = list(skipped)
    for scale in todo:
        metrics = dict(by_scale[scale])
        record = EvalRecord(
            backbone_digest=model.digest,
            backbone_name=model.name,
            pretrain_method=str(model.meta.get("method", "unknown")),
            task=task,
            dataset=spec.name,
            protocol=proto,
            budget=budget,
            metrics=metrics,
            primary_metric=result.primary_metric,
            primary_value=float(metrics[result.primary_metric]),
            config_digest=config_digest,
            seed=seed,
            package_version=saip_bench.__version__,
            git_revision=commit,
            duration_s=attempts.total_s,
            started_at=attempts.started_at,
            ended_at=ended,
            scale=scale,
            resumed=resumed,
            resumed_from_step=int(result.extra.get("resumed_from_step", 0)),
            train_scale=trained_scale(proto, scale, train_scale),
            train_run=run_dir.relative_to(workspace).as_posix(),
        )
        if is_main:
            # The record file first (atomic, safe on a network filesystem), then the store takes it in.
            write_record_file(workspace, record)
        outcomes.append(Outcome(spec.name, proto, scale, "done", run_dir, record, backbone=backbone))
    if is_main and store is not None:
        store.ingest(workspace)
    order = {s: i for i, s in enumerate(eval_scales)}
    return sorted(outcomes, key=lambda out: order[out.scale])
