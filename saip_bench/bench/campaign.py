"""A campaign file: which backbones on which datasets, how, how many times, and where the jobs run.

::

    name: paper-table                 # names the campaign's folder: <workspace>/campaigns/<name>/
    data_root: /data/hcp              # relative paths are relative to this file
    workspace: ./saip-workspace       # default: $SAIP_WORKSPACE or ./saip-workspace
    backbones:                        # what --backbone takes: checkpoint paths, random:NAME, timm:NAME=PATH
                                      # (random:NAME is initialised with each job's seed; random:NAME@S: S)
      - runs/saip_vit_tiny/backbone.safetensors
      - random:saip_vit_tiny
    tasks: all                        # or a list: [reid, attribute, pose]
    datasets: all                     # or a list of dataset names (of those tasks)
    protocols: [finetune]             # default: each dataset's own (its first) protocol
    budgets: [full]                   # full | short | smoke
    scales: [0.5, 1.0, 1.5]           # the scale probe: one model trained at x1, evaluated at each (one job)
    train_per_scale: false            # true: a model trained at each scale's size (one job per scale)
    seeds: [0, 1, 2]                  # each cell runs once per seed; the record keeps the seed (--seeds N:
                                      # 0..N-1 instead)
    overrides: [eval.batch_size=128]  # key=value recipe overrides, for every job
    device: auto
    launcher:
      name: local                     # local | torchrun | slurm (``--launcher`` overrides it)
      gpus: [0, 1, 2, 3]              # local: one job per GPU at a time (CUDA_VISIBLE_DEVICES)
      nproc_per_node: 8               # torchrun: one job over this many processes
      slurm: {partition: gpu, gpus_per_node: 1, cpus_per_task: 8, mem_gb: 64, time_min: 720}

A campaign may also write synthetic data, pretrain backbones and write its report itself (the keys
``synthetic_data``, ``pretrain``, ``report``: :mod:`saip_bench.bench.study`; ``campaigns/cpu_study.yaml``).

Every key is checked: an unknown one or a wrong type is one :class:`~saip_bench.errors.ConfigError` naming the
file and the key, before anything runs.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from saip_bench.bench.study import STUDY_KEYS, Study, parse_study
from saip_bench.errors import ConfigError
from saip_bench.launch.slurm import SlurmSettings

LAUNCHERS = ("local", "torchrun", "slurm")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class LauncherSettings:
    """Where a campaign's jobs run.

    Attributes:
        name: ``local``, ``torchrun`` or ``slurm``.
        gpus: ``local``: the GPU indices to spread jobs over, one job per GPU at a time (empty: one job after
            another in this process).
        nproc_per_node: ``torchrun``: processes per job (one per GPU).
        slurm: ``slurm``: the sbatch settings of every job.
    """

    name: str = "local"
    gpus: tuple[int, ...] = ()
    nproc_per_node: int = 1
    slurm: SlurmSettings = field(default_factory=SlurmSettings)


@dataclass(frozen=True)
class Campaign:
    """A campaign file, checked and with its paths resolved (see the module docstring for the keys)."""

    name: str
    path: Path
    backbones: tuple[str, ...]
    tasks: tuple[str, ...] | None  # None: all
    datasets: tuple[str, ...] | None  # None: all of the tasks'
    protocols: tuple[str, ...] | None  # None: each dataset's default
    budgets: tuple[str, ...]
    scales: tuple[float, ...]
    seeds: tuple[int, ...]
    overrides: tuple[str, ...]
    data_root: Path
    workspace: Path
    device: str
    launcher: LauncherSettings
    train_per_scale: bool = False  # scales: a model per scale, not one trained at x1 probed at each
    study: Study | None = None  # synthetic data to write and backbones to pretrain first (bench/study.py)

    @property
    def folder(self) -> Path:
        """``<workspace>/campaigns/<name>/``: the jobs' state files and logs."""
        return self.workspace / "campaigns" / self.name


_KEYS = {
    "name": "a name (letters, digits, - _ .)",
    "data_root": "a folder path",
    "workspace": "a folder path",
    "backbones": "a list of backbone specs",
    "tasks": "'all' or a list of task names",
    "datasets": "'all' or a list of dataset names",
    "protocols": "a list of protocols (finetune, linear, frozen)",
    "budgets": "a list of budgets (full, short, smoke)",
    "budget": "a budget (full, short, smoke)",
    "scales": "a list of positive numbers",
    "train_per_scale": "true or false",
    "seeds": "a list of integers",
    "overrides": "a list of key=value strings",
    "device": "auto | cpu | cuda | cuda:N",
    "launcher": "a mapping (name, gpus, nproc_per_node, slurm)",
    **STUDY_KEYS,
}
_LAUNCHER_KEYS = ("name", "gpus", "nproc_per_node", "slurm")


def load_campaign(
    path: str | Path,
    *,
    launcher: str | None = None,
    workspace: Path | None = None,
    data_root: Path | None = None,
    seeds: int | None = None,
) -> Campaign:
    """Read and check a campaign file; the keyword arguments are the command line's overrides.

    Args:
        path: The campaign file.
        launcher: ``--launcher``: instead of the file's ``launcher.name``.
        workspace: ``--workspace``: instead of the file's (or the default).
        data_root: ``--data-root``: instead of the file's.
        seeds: ``--seeds N``: seeds 0..N-1 instead of the file's ``seeds`` (N >= 1).

    Raises:
        ConfigError: a missing or malformed file, an unknown key, a value of the wrong type or out of range,
            an unknown task, dataset, protocol or budget; ``seeds`` < 1.
    """
    from saip_bench.evaluate.budgets import BUDGETS
    from saip_bench.evaluate.protocols import PROTOCOL_NAMES, read_yaml
    from saip_bench.results import default_workspace

    path = Path(path)
    if seeds is not None and (isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1):
        raise ConfigError(f"--seeds must be an integer >= 1 (seeds 0..N-1), got {seeds!r}")
    if not path.is_file():
        raise ConfigError(f"{path}: no such campaign file")
    raw = read_yaml(path)
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{path}: a campaign file is a mapping of keys ({', '.join(_KEYS)})")
    for key in raw:
        if key not in _KEYS:
            raise ConfigError(f"{path}: unknown key {key!r}; valid keys: {', '.join(_KEYS)}")
    where = str(path)

    def strings(key: str, *, allow_all: bool = False) -> tuple[str, ...] | None:
        value = raw.get(key)
        if value is None or (allow_all and value == "all"):
            return None
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
            raise ConfigError(f"{where}: {key} must be {_KEYS[key]}, got {value!r}")
        return tuple(dict.fromkeys(value))

    name = raw.get("name", path.stem)
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(f"{where}: name must be {_KEYS['name']}, got {name!r}")
    backbones = strings("backbones")
    if backbones is None:
        raise ConfigError(f"{where}: backbones is required ({_KEYS['backbones']})")
    base = path.parent
    backbones = tuple(_resolve_backbone(b, base) for b in backbones)
    tasks = strings("tasks", allow_all=True)
    datasets = strings("datasets", allow_all=True)
    _check_selection(where, tasks, datasets)
    protocols = strings("protocols")
    for proto in protocols or ():
        if proto not in PROTOCOL_NAMES:
            raise ConfigError(f"{where}: unknown protocol {proto!r}; valid: {', '.join(PROTOCOL_NAMES)}")
    if "budget" in raw and "budgets" in raw:
        raise ConfigError(f"{where}: give budget or budgets, not both")
    budgets = strings("budgets") if "budgets" in raw else strings("budget") or ("full",)
    for budget in budgets or ():
        if budget not in BUDGETS:
            raise ConfigError(f"{where}: unknown budget {budget!r}; valid: {', '.join(BUDGETS)}")
    scales = _numbers(where, "scales", raw.get("scales", [1.0]), float)
    if any(not (s > 0) for s in scales):
        raise ConfigError(f"{where}: scales must be positive numbers, got {list(scales)}")
    train_per_scale = raw.get("train_per_scale", False)
    if not isinstance(train_per_scale, bool):
        raise ConfigError(
            f"{where}: train_per_scale must be {_KEYS['train_per_scale']}, got {train_per_scale!r}"
        )
    file_seeds = _numbers(where, "seeds", raw.get("seeds", [0]), int)  # checked even when --seeds replaces it
    seed_list = tuple(range(seeds)) if seeds is not None else file_seeds
    overrides = strings("overrides") or ()
    for item in overrides:
        key, sep, _ = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"{where}: override {item!r} is not key=value")
        if key == "seed":
            raise ConfigError(f"{where}: set seeds with the seeds key, not an override")
    device = raw.get("device", "auto")
    if not isinstance(device, str) or not re.match(r"^(auto|cpu|cuda(:\d+)?)$", device):
        raise ConfigError(f"{where}: device must be {_KEYS['device']}, got {device!r}")
    settings = _launcher(where, raw.get("launcher") or {}, launcher)
    study = parse_study(where, raw, base)
    if workspace is None:
        workspace = _path(where, "workspace", raw["workspace"], base) if "workspace" in raw else None
    workspace = Path(workspace) if workspace is not None else default_workspace()
    if data_root is None:
        if "data_root" not in raw and not (study and study.data):
            raise ConfigError(f"{where}: data_root is required (or pass --data-root)")
        # a study writes its synthetic data into the workspace unless told where
        data_root = (
            _path(where, "data_root", raw["data_root"], base) if "data_root" in raw else workspace / "data"
        )
    if study and study.pretrain:
        backbones = (*backbones, *(str(p.resolve()) for p in study.exports(workspace)))
    return Campaign(
        name=name,
        path=path,
        backbones=backbones,
        tasks=tasks,
        datasets=datasets,
        protocols=protocols,
        budgets=budgets,  # type: ignore[arg-type]
        scales=scales,  # type: ignore[arg-type]
        seeds=seed_list,
        overrides=overrides,
        data_root=Path(data_root),
        workspace=workspace,
        device=device,
        launcher=settings,
        train_per_scale=train_per_scale,
        study=study,
    )


def _resolve_backbone(spec: str, base: Path) -> str:
    """A backbone path relative to the campaign file becomes absolute (jobs run from other folders)."""
    if ":" in spec.split("/")[0] or Path(spec).is_absolute():  # random:NAME, timm:NAME=PATH, /abs/path
        return spec
    return str((base / spec).resolve())


def _path(where: str, key: str, value: Any, base: Path) -> Path:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: {key} must be {_KEYS[key]}, got {value!r}")
    path = Path(os.path.expandvars(os.path.expanduser(value)))
    return path if path.is_absolute() else (base / path).resolve()


def _numbers(where: str, key: str, value: Any, kind: type) -> tuple:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = [value]
    ok = isinstance(value, list) and value
    ok = ok and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    if kind is int:
        ok = ok and all(float(v).is_integer() for v in value)
    if not ok:
        raise ConfigError(f"{where}: {key} must be {_KEYS[key]}, got {value!r}")
    return tuple(dict.fromkeys(kind(v) for v in value))


def _check_selection(where: str, tasks: tuple[str, ...] | None, datasets: tuple[str, ...] | None) -> None:
    from saip_bench.datasets import DATASETS

    evaluated = {name: DATASETS.get(name) for name in DATASETS.names() if DATASETS.get(name).protocols}
    valid_tasks = sorted({spec.task for spec in evaluated.values()})
    for task in tasks or ():
        if task not in valid_tasks:
            raise ConfigError(f"{where}: unknown task {task!r}; valid tasks: {', '.join(valid_tasks)}")
    for name in datasets or ():
        if name not in evaluated:
            raise ConfigError(f"{where}: unknown dataset {name!r}; valid datasets: {', '.join(evaluated)}")
        if tasks is not None and evaluated[name].task not in tasks:
            raise ConfigError(
                f"{where}: dataset {name!r} is a {evaluated[name].task} dataset, not of {tasks}"
            )


def _launcher(where: str, raw: Any, name: str | None) -> LauncherSettings:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: launcher must be {_KEYS['launcher']}, got {raw!r}")
    for key in raw:
        if key not in _LAUNCHER_KEYS:
            raise ConfigError(f"{where}: unknown key launcher.{key}; valid keys: {', '.join(_LAUNCHER_KEYS)}")
    chosen = name or raw.get("name", "local")
    if chosen not in LAUNCHERS:
        raise ConfigError(f"{where}: unknown launcher {chosen!r}; valid launchers: {', '.join(LAUNCHERS)}")
    gpus = raw.get("gpus", [])
    if not isinstance(gpus, list) or not all(
        isinstance(g, int) and not isinstance(g, bool) and g >= 0 for g in gpus
    ):
        raise ConfigError(f"{where}: launcher.gpus must be a list of GPU indices, got {gpus!r}")
    nproc = raw.get("nproc_per_node", 1)
    if not isinstance(nproc, int) or isinstance(nproc, bool) or nproc < 1:
        raise ConfigError(f"{where}: launcher.nproc_per_node must be an integer >= 1, got {nproc!r}")
    slurm = SlurmSettings.from_mapping(raw.get("slurm") or {}, where=f"{where}: launcher.slurm")
    return LauncherSettings(name=chosen, gpus=tuple(dict.fromkeys(gpus)), nproc_per_node=nproc, slurm=slurm)
