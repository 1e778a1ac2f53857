"""What one dataset is, declared once: :class:`DatasetSpec`, and :class:`SynthOptions` for its writer.

Each task declares its datasets in its own folder, in ``tasks/<task>/datasets.yaml`` (one mapping per
dataset, keyed by its name; the keys are :class:`DatasetSpec`'s fields); the central list
:data:`saip_bench.datasets.REGISTERED` registers each with one line. A spec names its code as
``"module:attribute"`` strings (the loader, the check, the synthetic writer, the task adapter; a leading
``.`` is relative to the task's package), imported only when called, so listing the datasets
(``saip report``, ``saip data check``) imports no numpy, PIL or torch.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from saip_bench.errors import ConfigError

if TYPE_CHECKING:
    from saip_bench.evaluate.adapter import TaskAdapter


@dataclass(frozen=True)
class SynthOptions:
    """What ``saip data synth`` asks a synthetic writer for; each writer reads only the fields it uses.

    Attributes:
        ids: number of identities (writers of scene datasets draw fresh people and ignore it).
        images: number of images (the writer decides how they split).
        seed: random seed; the same seed writes the same files.
    """

    ids: int = 16
    images: int = 160
    seed: int = 0


def resolve_ref(ref: str) -> Any:
    """The object a ``"package.module:attr"`` (or ``"module:obj.attr"``) reference names, imported now."""
    module_name, sep, attr = ref.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"bad reference {ref!r}: expected 'package.module:attribute'")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


@dataclass(frozen=True)
class DatasetSpec:
    """Every fact about one dataset, and lazy access to its code.

    Attributes:
        name: CLI and registry name, e.g. ``"market1501"``.
        title: as papers print it, e.g. ``"Market-1501"``.
        task: the task, e.g. ``"reid"`` (``"pretrain"`` for the LUP crops).
        folder: the usual folder name under a data root (where ``saip data synth`` writes it).
        primary_metric: the metric the report ranks by (a key of the task's metrics); ``"-"`` if none.
        loader: ``"module:function"`` reading the folder: ``load(root, *args) -> the task's data``.
        checker: ``"module:function"`` validating the folder: ``check(root) -> {count name: count}``,
            raising :class:`~saip_bench.errors.DataFormatError` naming the first bad file.
        writer: ``"module:function"`` writing a synthetic copy: ``write_synth(out, options: SynthOptions)``.
        protocols: evaluation protocols the dataset supports, the first the default (empty: not evaluated).
        recipe: recipe file relative to ``saip_bench.configs``, e.g.
            ``"evaluate/reid_market1501_256x128.yaml"``, or, starting with ``./``, relative to the task's
            own folder (``"./newset_256x128.yaml"``, shipped as package data), so a new dataset can keep it
            there.
        adapter: ``"module:Class"`` of the task adapter (:class:`~saip_bench.evaluate.adapter.TaskAdapter`).
        best: best-selection rule on the primary metric: ``"max"`` or ``"min"``.
        needs: optional mm packages the adapter imports (``"mmpose"``, ``"mmdet"``); the demo skips the
            dataset, saying so, when one is missing (:func:`saip_bench.mm.available.missing_mm`).
        official_counts: the released dataset's counts, keyed like ``check``'s result.
        aliases: other folder names users have (e.g. torchreid's ``market1501/Market-1501-v15.09.15``).
    """

    name: str
    title: str
    task: str
    folder: str
    primary_metric: str
    loader: str | None = None
    checker: str | None = None
    writer: str | None = None
    protocols: tuple[str, ...] = ()
    recipe: str | None = None
    adapter: str | None = None
    best: Literal["max", "min"] = "max"
    needs: tuple[str, ...] = ()
    official_counts: Mapping[str, int] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()

    @property
    def default_protocol(self) -> str:
        """The protocol ``saip evaluate`` runs when none is given."""
        if not self.protocols:
            raise ConfigError(f"{self.title} is not an evaluation dataset (it has no protocols)")
        return self.protocols[0]

    def _code(self, ref: str | None, what: str) -> Any:
        if ref is None:
            raise ConfigError(f"{self.title} has no {what}")
        return resolve_ref(ref)

    def load(self, root: str | Path, *args: Any, **kwargs: Any) -> Any:
        """Read the dataset at ``root`` with its loader (the task's data object, e.g. ``ReidSplits``)."""
        return self._code(self.loader, "loader")(root, *args, **kwargs)

    def check(self, root: str | Path) -> dict[str, int]:
        """Validate the folder ``root`` against the real format and return the counts found."""
        return self._code(self.checker, "format check")(Path(root))

    def write_synth(self, out: str | Path, options: SynthOptions | None = None, **fields: int) -> None:
        """Write a synthetic copy into the folder ``out``: ``options``, or :class:`SynthOptions` ``fields``
        (``spec.write_synth(out, ids=4, images=12, seed=3)``)."""
        if options is None:
            options = SynthOptions(**fields)
        elif fields:
            raise TypeError("pass either options or ids/images/seed keywords, not both")
        self._code(self.writer, "synthetic writer")(Path(out), options)

    def load_adapter(self) -> TaskAdapter:
        """Import and instantiate the task adapter."""
        from saip_bench.evaluate.adapter import TaskAdapter

        adapter = self._code(self.adapter, "task adapter")()
        if not isinstance(adapter, TaskAdapter):
            raise TypeError(f"{self.adapter} does not implement TaskAdapter")
        return adapter

    def recipe_path(self) -> Path:
        """The recipe file; a :class:`ConfigError` if it is not shipped."""
        from saip_bench.configs import config_path

        if self.recipe is None:
            raise ConfigError(f"{self.title} has no evaluation recipe")
        if self.recipe.startswith("./"):
            from importlib.resources import files

            path = Path(str(files(f"saip_bench.tasks.{self.task}").joinpath(self.recipe[2:])))
            if not path.is_file():
                raise ConfigError(f"{path}: no such recipe file (declared for {self.name})")
            return path
        try:
            return config_path(self.recipe)
        except FileNotFoundError as err:
            raise ConfigError(str(err)) from None


def dataset_folder(root: str | Path, folder: str, marker: str) -> Path:
    """The dataset's own folder: ``root`` itself, or ``root/folder`` when ``root`` has no ``marker`` (a file
    or folder every copy of the dataset holds) and ``root/folder`` exists; so a loader takes either."""
    root = Path(root)
    if not (root / marker).exists() and (root / folder).is_dir():
        return root / folder
    return root


#: A declaration's list values, turned into the tuples :class:`DatasetSpec` holds.
_TUPLES = ("protocols", "needs", "aliases")
_REFS = ("loader", "checker", "writer", "adapter")


@functools.cache
def task_datasets(task: str) -> dict[str, DatasetSpec]:
    """The datasets ``tasks/<task>/datasets.yaml`` declares, by name, as :class:`DatasetSpec` (task filled in,
    relative ``.module:attr`` references made absolute).

    Raises:
        ConfigError: the file is missing or malformed, or a declaration has an unknown or missing key (the
            message names the file and the dataset).
    """
    package = f"saip_bench.tasks.{task}"
    found = importlib.util.find_spec(package)
    if found is None or not found.submodule_search_locations:
        raise ConfigError(f"unknown task {task!r}: no package {package}")
    return read_declarations(
        Path(next(iter(found.submodule_search_locations))) / "datasets.yaml", task, package
    )


def read_declarations(path: Path, task: str, package: str) -> dict[str, DatasetSpec]:
    """Parse one ``datasets.yaml`` of ``task`` (see :func:`task_datasets`); ``package`` anchors ``.`` refs."""
    import yaml

    try:
        declared = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"{path}: cannot read the task's dataset declarations ({err})") from None
    if not isinstance(declared, dict):
        raise ConfigError(f"{path}: expected a mapping of dataset name -> facts")
    valid = {f.name for f in dataclasses.fields(DatasetSpec)} - {"name", "task"}
    specs = {}
    for name, facts in declared.items():
        if not isinstance(facts, dict):
            raise ConfigError(f"{path}: {name}: expected a mapping of facts")
        unknown = sorted(set(facts) - valid)
        if unknown:
            raise ConfigError(
                f"{path}: {name}: unknown key(s) {', '.join(unknown)}; valid: {', '.join(sorted(valid))}"
            )
        values = dict(facts)
        for key in _TUPLES:
            if key in values:
                values[key] = tuple(values[key])
        for key in _REFS:
            if isinstance(values.get(key), str) and values[key].startswith("."):
                values[key] = package + values[key]
        try:
            specs[name] = DatasetSpec(name=str(name), task=task, **values)
        except TypeError as err:  # a required fact is missing
            raise ConfigError(f"{path}: {name}: {err}") from None
    return specs
