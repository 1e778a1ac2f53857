"""A campaign's own preparation: the synthetic data it evaluates on and the backbones it pretrains first.

A campaign file may add three keys to the usual ones (:mod:`saip_bench.bench.campaign`); with them one
``saip bench run`` is a whole learning study (``configs/campaigns/cpu_study.yaml``)::

    synthetic_data:                   # written once under data_root (default: <workspace>/data)
      seed: 0
      lup: {ids: 800, images: 9600}   # the pretraining crops (LUP format)
      eval: {ids: 128, images: 2048}  # every dataset of the campaign's datasets list ...
      sizes: {lip: {ids: 64, images: 512}}  # ... unless it has its own size
    pretrain:                         # each exported to <workspace>/runs/pretrain/<name>/, and the export
      - name: saip                    # (backbone.safetensors) joins the campaign's backbones
        recipe: ../pretrain/saip_study_cpu.yaml   # relative to the campaign file
        overrides: [train.steps=300]  # key=value, as ``saip pretrain``'s
    report:                           # written after the evaluations, under <workspace>/<folder>/
      folder: report                  # table.md (backbones x datasets), scales.md and scales.png (--scales)

Every stage skips what is there already: a dataset folder that exists, a finished export; an interrupted
pretraining resumes its last checkpoint. :class:`StageClock` times the stages for the summary the CLI prints.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from saip_bench.errors import ConfigError, SaipError

log = logging.getLogger(__name__)

#: The campaign keys this module reads, with what each must be (for the campaign's error messages).
STUDY_KEYS = {
    "synthetic_data": "a mapping (seed, lup, eval, sizes) of synthetic datasets to write",
    "pretrain": "a list of pretraining runs (name, recipe, overrides)",
    "report": "a mapping (folder) where the report and the scale plot are written",
}
_DATA_KEYS = ("seed", "lup", "eval", "sizes")
_PRETRAIN_KEYS = ("name", "recipe", "overrides")
_REPORT_KEYS = ("folder",)
_SIZE_KEYS = ("ids", "images")
_RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")  # a folder name under runs/pretrain/
#: Where :class:`StudyPretrain` runs and exports, under the workspace.
PRETRAIN_DIR = ("runs", "pretrain")
EXPORT_NAME = "backbone.safetensors"

#: ``say(text)``: a line for the user (the CLI prints it).
SayFn = Callable[[str], None]


@dataclass(frozen=True)
class SynthSize:
    """How many identities and images a synthetic dataset gets."""

    ids: int
    images: int


@dataclass(frozen=True)
class StudyData:
    """The ``synthetic_data`` key: the pretraining crops and the evaluation datasets to write."""

    seed: int = 0
    lup: SynthSize | None = None
    eval: SynthSize | None = None
    sizes: Mapping[str, SynthSize] = field(default_factory=dict)

    def size_of(self, dataset: str) -> SynthSize | None:
        """The size ``dataset`` is written at (None: not written)."""
        return self.lup if dataset == "lup" else self.sizes.get(dataset, self.eval)


@dataclass(frozen=True)
class StudyPretrain:
    """One entry of the ``pretrain`` key: a recipe, run once, exported under the workspace."""

    name: str
    recipe: Path
    overrides: tuple[str, ...] = ()

    def run_dir(self, workspace: Path) -> Path:
        """``<workspace>/runs/pretrain/<name>``: checkpoint, logs, resolved config and export."""
        return workspace.joinpath(*PRETRAIN_DIR, self.name)

    def export(self, workspace: Path) -> Path:
        """The exported backbone, which the campaign evaluates."""
        return self.run_dir(workspace) / EXPORT_NAME


@dataclass(frozen=True)
class Study:
    """A campaign's preparation and report (the three keys of the module docstring)."""

    data: StudyData | None = None
    pretrain: tuple[StudyPretrain, ...] = ()
    report_folder: str | None = None

    def exports(self, workspace: Path) -> list[Path]:
        """The backbones the pretraining stage writes, in the file's order."""
        return [run.export(workspace) for run in self.pretrain]


def parse_study(where: str, raw: Mapping[str, Any], base: Path) -> Study | None:
    """The study keys of a campaign file's mapping ``raw`` (None when it has none).

    Args:
        where: the campaign file, for error messages.
        raw: the whole campaign mapping.
        base: the folder recipe paths are relative to (the campaign file's).

    Raises:
        ConfigError: one line naming the file and the key: an unknown sub-key, a wrong type, a recipe file
            that does not exist, two pretraining runs of one name.
    """
    if not any(key in raw for key in STUDY_KEYS):
        return None
    data = _data(where, raw["synthetic_data"]) if raw.get("synthetic_data") is not None else None
    runs = _pretrain(where, raw.get("pretrain") or [], base)
    folder = None
    if raw.get("report") is not None:
        report = _mapping(where, "report", raw["report"], _REPORT_KEYS)
        folder = report.get("folder", "report")
        if (
            not isinstance(folder, str)
            or not folder
            or Path(folder).is_absolute()
            or ".." in Path(folder).parts
        ):
            raise ConfigError(
                f"{where}: report.folder must be a folder name inside the workspace, got {folder!r}"
            )
    return Study(data=data, pretrain=runs, report_folder=folder)


def _mapping(where: str, key: str, value: Any, keys: Sequence[str]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: {key} must be a mapping ({', '.join(keys)}), got {value!r}")
    for sub in value:
        if sub not in keys:
            raise ConfigError(f"{where}: unknown key {key}.{sub}; valid keys: {', '.join(keys)}")
    return value


def _count(where: str, key: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{where}: {key} must be an integer >= 1, got {value!r}")
    return value


def _size(where: str, key: str, value: Any) -> SynthSize:
    value = _mapping(where, key, value, _SIZE_KEYS)
    for sub in _SIZE_KEYS:
        if sub not in value:
            raise ConfigError(f"{where}: {key}.{sub} is required (an integer >= 1)")
    return SynthSize(
        _count(where, f"{key}.ids", value["ids"]), _count(where, f"{key}.images", value["images"])
    )


def _data(where: str, value: Any) -> StudyData:
    from saip_bench.data_check import resolve_formats

    value = _mapping(where, "synthetic_data", value, _DATA_KEYS)
    seed = value.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ConfigError(f"{where}: synthetic_data.seed must be an integer, got {seed!r}")
    sizes = value.get("sizes") or {}
    if not isinstance(sizes, Mapping):
        raise ConfigError(f"{where}: synthetic_data.sizes must be a mapping of dataset: {{ids, images}}")
    writable = {info.name for info in resolve_formats("all")[0]}
    for name in sizes:
        if name not in writable or name == "lup":
            raise ConfigError(
                f"{where}: synthetic_data.sizes.{name}: no synthetic writer for {name!r}; "
                f"valid: {', '.join(sorted(writable - {'lup'}))}"
            )
    return StudyData(
        seed=seed,
        lup=_size(where, "synthetic_data.lup", value["lup"]) if "lup" in value else None,
        eval=_size(where, "synthetic_data.eval", value["eval"]) if "eval" in value else None,
        sizes={name: _size(where, f"synthetic_data.sizes.{name}", s) for name, s in sizes.items()},
    )


def _pretrain(where: str, value: Any, base: Path) -> tuple[StudyPretrain, ...]:
    from saip_bench.pretrain.config import load_config

    if not isinstance(value, list):
        raise ConfigError(f"{where}: pretrain must be {STUDY_KEYS['pretrain']}, got {value!r}")
    runs: list[StudyPretrain] = []
    for i, item in enumerate(value):
        key = f"pretrain[{i}]"
        item = _mapping(where, key, item, _PRETRAIN_KEYS)
        name, recipe = item.get("name"), item.get("recipe")
        if not isinstance(name, str) or not _RUN_NAME.match(name):
            raise ConfigError(f"{where}: {key}.name must be a run name (letters, digits, - _), got {name!r}")
        if name in {run.name for run in runs}:
            raise ConfigError(f"{where}: {key}.name {name!r} is used twice")
        if not isinstance(recipe, str) or not recipe:
            raise ConfigError(f"{where}: {key}.recipe must be a pretraining recipe path, got {recipe!r}")
        path = Path(recipe) if Path(recipe).is_absolute() else (base / recipe).resolve()
        if not path.is_file():
            raise ConfigError(f"{where}: {key}.recipe: no such file {path}")
        overrides = item.get("overrides") or []
        if not isinstance(overrides, list) or not all(isinstance(o, str) and "=" in o for o in overrides):
            raise ConfigError(
                f"{where}: {key}.overrides must be a list of key=value strings, got {overrides!r}"
            )
        try:  # a bad recipe key or override fails here, not minutes into the study
            load_config(path, overrides)
        except ConfigError as err:
            raise ConfigError(f"{where}: {key}: {err}") from None
        runs.append(StudyPretrain(name=name, recipe=path, overrides=tuple(overrides)))
    return tuple(runs)


@dataclass
class StageTime:
    """One timed stage: its name (data, pretrain saip, evaluate, report), seconds and what it did."""

    name: str
    seconds: float
    detail: str = ""


@dataclass
class StageClock:
    """The stages of one ``saip bench run``, timed in order (``with clock.stage("data"): ...``)."""

    stages: list[StageTime] = field(default_factory=list)

    @contextmanager
    def stage(self, name: str, detail: str = "") -> Iterator[StageTime]:
        """Time the block as stage ``name``; the yielded entry's ``detail`` may be set inside it. A stage
        that raises is kept, with ``failed`` in its detail."""
        entry = StageTime(name, 0.0, detail)
        start = time.perf_counter()
        try:
            yield entry
        except BaseException:
            entry.detail = f"{entry.detail} (failed)".strip()
            raise
        finally:
            entry.seconds = time.perf_counter() - start
            self.stages.append(entry)

    @property
    def total(self) -> float:
        """Seconds over all stages."""
        return sum(s.seconds for s in self.stages)

    def write(self, path: Path) -> None:
        """The stage times as JSON, atomically (``<campaign folder>/stages.json``)."""
        from saip_bench.io import atomic_write_json

        atomic_write_json(path, {"stages": [asdict(s) for s in self.stages], "total_s": self.total})


def write_study_data(
    data: StudyData, data_root: Path, datasets: Sequence[str], *, say: SayFn | None = None
) -> list[str]:
    """Write the LUP crops and each of ``datasets`` that ``data`` sizes under ``data_root``, skipping every
    folder already there; return the names written.

    Raises:
        SaipError: a dataset without a synthetic writer.
    """
    from saip_bench.data_check import resolve_formats, write_synth_dataset

    formats = {info.name: info for info in resolve_formats("all")[0]}
    written = []
    for name in ("lup", *datasets):
        size = data.size_of(name)
        if size is None:
            continue
        if name not in formats:
            raise SaipError(f"synthetic_data: no synthetic writer for {name!r}; valid: {', '.join(formats)}")
        info = formats[name]
        if (data_root / info.folder).is_dir():
            continue
        if say:
            say(f"data: writing synthetic {name} ({size.ids} ids, {size.images} images) to {data_root}")
        write_synth_dataset(info, data_root, ids=size.ids, images=size.images, seed=data.seed)
        written.append(name)
    return written


def pretrain_study_run(run: StudyPretrain, data_root: Path, workspace: Path) -> str:
    """Pretrain ``run`` on ``data_root/LUP`` unless its export exists; an interrupted run resumes its last
    checkpoint. Return what happened: ``done``, ``resumed`` or ``skipped``.

    Raises:
        SaipError: a bad recipe or override, a missing LUP folder, a non-finite loss.
    """
    from saip_bench.datasets import LUP
    from saip_bench.pretrain.engine.run import build_config, run_pretraining
    from saip_bench.pretrain.engine.trainer import checkpoint_path

    out = run.run_dir(workspace)
    if run.export(workspace).is_file():
        return "skipped"
    resume = checkpoint_path(out).is_file()
    cfg = build_config(run.recipe, overrides=run.overrides)
    result = run_pretraining(cfg, data_root / LUP.folder, out, resume=resume)
    log.info(
        "%s: loss %.3f -> %.3f over %d steps",
        run.name,
        result.first_losses.get("loss", float("nan")),
        result.last_losses.get("loss", float("nan")),
        result.steps,
    )
    return "resumed" if resume else "done"
