"""A campaign's jobs: one per backbone x dataset x protocol x budget x seed, each a ``saip evaluate``.

A job covers all of the campaign's scales (the scale probe: one model trained at x1, evaluated at each scale,
one record each); with ``train_per_scale`` it is one job per scale instead.

:func:`plan_campaign` resolves every job the way ``saip evaluate`` would (the backbone's digest, for a
``random:NAME`` that of the job's seed's init; the recipe's config digest with the job's seed), so a job is
"recorded" exactly when ``saip evaluate`` would skip it, and estimates its cost from the budget: the optimizer
steps its recipe asks for on the released dataset's size (``official_counts``), and the wall time of the same
cells already recorded in the workspace.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from saip_bench.bench.campaign import Campaign
from saip_bench.errors import ConfigError, DataFormatError


@dataclass(frozen=True)
class Job:
    """One evaluation of a campaign (what one ``saip evaluate`` call with one dataset does): a model trained
    at :attr:`scale` and evaluated at each of :attr:`scales`, one record each."""

    id: str
    task: str
    dataset: str
    protocol: str
    budget: str
    backbone: str
    backbone_name: str
    backbone_digest: str
    scales: tuple[float, ...]
    seed: int
    config_digest: str
    overrides: tuple[str, ...] = ()
    epochs: int = 0
    steps: int | None = None  # optimizer steps on the released dataset (None: unknown)
    train_per_scale: bool = False  # True: trained at the size of its one scale

    @property
    def scale(self) -> float:
        """The input scale its model is trained at: x1 for the scale probe, else its one scale."""
        from saip_bench.evaluate.dispatch import PROBE_TRAIN_SCALE

        return float(self.scales[0]) if self.train_per_scale else PROBE_TRAIN_SCALE

    @property
    def scale_label(self) -> str:
        """``0.5``: one scale, trained at its size; ``1>0.5,1,1.5``: a probe of one model trained at x1."""
        shown = ",".join(f"{s:g}" for s in self.scales)
        return shown if self.scales == (self.scale,) else f"{self.scale:g}>{shown}"

    @property
    def keys(self) -> tuple[tuple[str, str, str, str, float, float], ...]:
        """What identifies its records, one per scale: weights, dataset, protocol, resolved config, scale and
        the scale the model was trained at (see :func:`record_key`)."""
        from saip_bench.evaluate.dispatch import trained_scale

        return tuple(
            (
                self.backbone_digest,
                self.dataset,
                self.protocol,
                self.config_digest,
                round(float(s), 9),
                round(trained_scale(self.protocol, s, self.scale), 9),
            )
            for s in self.scales
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (a job file, a Slurm job's argument)."""
        data = asdict(self)
        data["overrides"] = list(self.overrides)
        data["scales"] = list(self.scales)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Job:
        """Inverse of :meth:`to_dict`."""
        return cls(
            **{
                **data,
                "overrides": tuple(data.get("overrides", ())),
                "scales": tuple(float(s) for s in data["scales"]),
            }
        )


@dataclass
class Plan:
    """Every job of a campaign, which are recorded, and the datasets that cannot run (with why)."""

    campaign: Campaign
    jobs: list[Job]
    recorded: dict[str, Any]  # job id -> its record at its training scale (or its first), once all exist
    notes: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)  # job id -> estimated wall time, where known

    @property
    def missing(self) -> list[Job]:
        """The jobs without a record: what ``saip bench run`` runs."""
        return [job for job in self.jobs if job.id not in self.recorded]


def record_key(record: Any) -> tuple[str, str, str, str, float, float]:
    """A record's entry of :attr:`Job.keys`."""
    trained = record.scale if getattr(record, "train_scale", None) is None else record.train_scale
    return (
        record.backbone_digest,
        record.dataset,
        record.protocol,
        record.config_digest,
        round(float(record.scale), 9),
        round(float(trained), 9),
    )


def _slug(text: str, size: int) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)[:size].strip("_.") or "backbone"


def _steps(spec: Any, recipe: dict[str, Any], protocol: str) -> tuple[int, int | None]:
    """(epochs, optimizer steps) a recipe asks for on the released dataset; frozen trains nothing."""
    if protocol == "frozen":
        return 0, 0
    train = recipe.get("train") or {}
    epochs = int(train.get("epochs", 1))
    sampler = recipe.get("sampler") or {}
    batch = train.get("batch_size") or (recipe.get("data") or {}).get("batch_size")
    if not batch and "p" in sampler and "k" in sampler:
        batch = int(sampler["p"]) * int(sampler["k"])
    cap = train.get("max_steps_per_epoch")
    size = spec.official_counts.get("train")
    per_epoch = math.ceil(size / int(batch)) if size and batch else None
    if cap:
        per_epoch = min(per_epoch, int(cap)) if per_epoch else int(cap)
    return epochs, (epochs * per_epoch if per_epoch else None)


def plan_campaign(campaign: Campaign) -> Plan:
    """Resolve every job of ``campaign`` and look up which are already recorded in its workspace.

    Raises:
        ConfigError / CheckpointError: a backbone that does not load, a recipe override that does not apply.
        DataFormatError: a dataset the campaign names explicitly has no folder under the data root (with
            ``all``, such datasets are notes instead).
    """
    from saip_bench.backbones.spec import follows_run_seed
    from saip_bench.datasets import DATASETS
    from saip_bench.evaluate.dispatch import backbone_identity, find_dataset_dir
    from saip_bench.evaluate.protocols import config_digest, load_recipe
    from saip_bench.results import workspace_records

    if not campaign.data_root.is_dir():
        raise DataFormatError(campaign.data_root, "data root is not a folder")
    # A random:NAME is initialised with each job's seed (the digest, so the job id and the run folder, differ
    # per seed; seed 0 is the network it always was): one identity per seed. Other backbones: one.
    wanted = dict.fromkeys(
        (spec, seed if follows_run_seed(spec) else None)
        for spec in campaign.backbones
        for seed in campaign.seeds
    )
    identities = {key: backbone_identity(*key) for key in wanted}
    if campaign.datasets is not None:
        names = list(campaign.datasets)
    else:
        tasks = campaign.tasks
        names = [n for n in DATASETS.names() if DATASETS.get(n).protocols]
        names = [n for n in names if tasks is None or DATASETS.get(n).task in tasks]
    explicit = campaign.datasets is not None
    notes: list[str] = []
    cells: list[tuple[Any, str, str]] = []  # dataset spec, protocol, budget
    for name in names:
        spec = DATASETS.get(name)
        protocols = campaign.protocols or (spec.default_protocol,)
        usable = [p for p in protocols if p in spec.protocols]
        if explicit and not usable:
            raise ConfigError(
                f"{campaign.path}: {name} supports protocols {', '.join(spec.protocols)}, "
                f"not {', '.join(protocols)}"
            )
        notes += [
            f"{name} {proto}: n/a ({name} has {', '.join(spec.protocols)})"
            for proto in protocols
            if proto not in spec.protocols
        ]
        if not usable:
            continue
        missing = _missing_packages(spec)
        if missing:
            if explicit:
                raise ConfigError(f"{campaign.path}: {name} needs {missing} (README, 'The OpenMMLab stack')")
            notes.append(f"{name}: missing, needs {missing}")
            continue
        try:
            find_dataset_dir(campaign.data_root, spec)
        except DataFormatError as err:
            if explicit:
                raise
            notes.append(f"{name}: missing, {err}")
            continue
        cells += [(spec, proto, budget) for proto in usable for budget in campaign.budgets]
    recipes: dict[tuple[str, str, str, int], dict[str, Any]] = {}  # the same for every backbone and scale
    runs = (
        [(float(s),) for s in campaign.scales]
        if campaign.train_per_scale
        else [tuple(float(s) for s in campaign.scales)]
    )
    jobs: list[Job] = []
    for backbone in campaign.backbones:
        for spec, proto, budget in cells:
            for scales in runs:
                label = (
                    f"x{scales[0]:g}"
                    if campaign.train_per_scale or scales == (1.0,)
                    else _probe_label(scales)
                )
                for seed in campaign.seeds:
                    ident = identities[(backbone, seed if follows_run_seed(backbone) else None)]
                    overrides = (*campaign.overrides, f"seed={seed}")
                    cell = (spec.name, proto, budget, int(seed))
                    if cell not in recipes:
                        recipes[cell] = load_recipe(
                            spec.recipe_path(), proto, budget, task=spec.task, overrides=overrides
                        )
                    recipe = recipes[cell]
                    epochs, steps = _steps(spec, recipe, proto)
                    job_id = (
                        f"{spec.name}-{proto}-{budget}-{label}-s{seed}-"
                        f"{_slug(ident.name, 32)}-{ident.digest[:8]}"
                    )
                    jobs.append(
                        Job(
                            id=job_id,
                            task=spec.task,
                            dataset=spec.name,
                            protocol=proto,
                            budget=budget,
                            backbone=ident.spec,
                            backbone_name=ident.name,
                            backbone_digest=ident.digest,
                            scales=scales,
                            seed=int(seed),
                            config_digest=config_digest(recipe),
                            overrides=tuple(overrides),
                            epochs=epochs,
                            steps=steps,
                            train_per_scale=campaign.train_per_scale,
                        )
                    )
    by_key: dict[tuple, Any] = {}
    records = workspace_records(campaign.workspace, ingest=False) if campaign.workspace.is_dir() else []
    for rec in records:
        by_key.setdefault(record_key(rec), rec)
    recorded = {
        job.id: by_key[job.keys[job.scales.index(job.scale)] if job.scale in job.scales else job.keys[0]]
        for job in jobs
        if all(key in by_key for key in job.keys)
    }
    return Plan(campaign, jobs, recorded, notes, _estimates(jobs, records))


def _missing_packages(spec: Any) -> str:
    from saip_bench.mm.available import missing_mm

    return ", ".join(missing_mm(*spec.needs)) if spec.needs else ""


def _probe_label(scales: tuple[float, ...]) -> str:
    return "x1p" + "_".join(f"{s:g}" for s in scales)


def _estimates(jobs: Iterable[Job], records: list[Any]) -> dict[str, float]:
    """Each job's wall time: the median of recorded runs of its dataset, protocol, budget and training scale
    (the records of one run, which share its ``train_run`` and its duration, count once)."""
    seen: dict[tuple, list[float]] = {}
    runs: set[tuple[str, str]] = set()
    for rec in records:
        run = getattr(rec, "train_run", "")
        if run and (run, rec.started_at) in runs:
            continue
        runs.add((run, rec.started_at))
        trained = rec.scale if getattr(rec, "train_scale", None) is None else rec.train_scale
        seen.setdefault((rec.dataset, rec.protocol, rec.budget, round(float(trained), 9)), []).append(
            float(rec.duration_s)
        )
    out = {}
    for job in jobs:
        times = seen.get((job.dataset, job.protocol, job.budget, round(job.scale, 9)))
        if times:
            out[job.id] = statistics.median(times)
    return out
