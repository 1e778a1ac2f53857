"""Recipe resolution, and the protocol view of the dataset registry (adapter, recipe, metric, protocols).

Each dataset's adapter, recipe, primary metric, best-selection rule and protocols are declared once, in its
:class:`~saip_bench.dataset_spec.DatasetSpec` (:mod:`saip_bench.datasets`); :data:`PROTOCOLS` is the view of
the registry holding the datasets that have protocols.

Recipes are YAML files under ``configs/evaluate/`` (package ``saip_bench.configs``). Layout::

    img_size: [256, 128]          # recipe input size (H, W); --scales multiplies it
    seed: 0
    eval: {...}                   # settings shared by every protocol (task-specific keys)
    protocols:
      finetune: {train: {...}, ...}   # train: keywords of saip_bench.engine.EngineConfig
      frozen: {...}
    budgets:                      # optional per-budget overrides, per protocol
      smoke: {finetune: {train: {epochs: 1}}, frozen: {...}}

:func:`load_recipe` merges with OmegaConf, in order: the task's documented defaults file
(``configs/evaluate/defaults/<task>.yaml``, which is also the list of valid keys: any other key is an error
naming the recipe), the recipe's top-level keys (without ``protocols``/``budgets``), the protocol's section,
the budget's defaults (:mod:`saip_bench.evaluate.budgets`), the recipe's own budget overrides, and last the
``key=value`` overrides of ``saip evaluate``. The ``train`` section is the engine's
:class:`~saip_bench.engine.EngineConfig`, checked by it.

Each dataset's recipe file and adapter (``"module:Class"``, imported only when it is evaluated) are named by
its declaration in ``tasks/<task>/datasets.yaml``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from saip_bench.dataset_spec import DatasetSpec
from saip_bench.datasets import DATASETS
from saip_bench.errors import ConfigError
from saip_bench.evaluate.adapter import PROTOCOL_NAMES
from saip_bench.evaluate.budgets import default_overrides
from saip_bench.registry import Registry

#: The evaluation datasets (every registered dataset with protocols), by name: a view of
#: :data:`saip_bench.datasets.DATASETS` holding the same :class:`~saip_bench.dataset_spec.DatasetSpec`
#: objects, so a dataset's adapter, recipe, primary metric, best rule and protocols are declared once.
PROTOCOLS: Registry[DatasetSpec] = Registry("evaluation dataset")
for _name, _spec in DATASETS.items():
    if _spec.protocols:
        PROTOCOLS.add(_name, _spec)


def datasets_for_task(task: str) -> list[str]:
    """Datasets registered for ``task``, in registry order; an unknown task lists the valid ones."""
    names = [name for name, spec in PROTOCOLS.items() if spec.task == task]
    if not names:
        valid = ", ".join(sorted({spec.task for _, spec in PROTOCOLS.items()}))
        raise ConfigError(f"unknown task {task!r}; valid tasks: {valid}")
    return names


def read_yaml(path: Path) -> dict[str, Any]:
    """A YAML mapping as plain Python containers; a malformed file is a :class:`ConfigError` naming it."""
    from omegaconf import OmegaConf

    try:
        data = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such recipe file") from None
    except Exception as err:  # omegaconf/yaml raise many types; one line naming the file is what users need
        raise ConfigError(f"{path}: not a valid YAML recipe ({type(err).__name__}: {err})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a recipe must be a YAML mapping")
    return data


#: Top-level recipe keys every task has (besides its defaults file's sections and the engine's ``train``).
COMMON_KEYS: dict[str, Any] = {"img_size": [256, 128], "seed": 0}


def task_defaults_path(task: str) -> Path | None:
    """The task's documented defaults file, ``configs/evaluate/defaults/<task>.yaml``, if it has one."""
    from saip_bench.configs import config_path

    try:
        return config_path(f"evaluate/defaults/{task}.yaml")
    except FileNotFoundError:
        return None


def parse_overrides(overrides: Sequence[str]) -> dict[str, Any]:
    """``["train.epochs=1", "eval.flip=false"]`` -> a nested dict (values parsed as YAML, like OmegaConf)."""
    from omegaconf import OmegaConf

    for item in overrides:
        key, sep, _ = item.partition("=")
        if not sep or not key or any(not part for part in key.split(".")):
            raise ConfigError(f"override {item!r}: expected key=value, e.g. train.epochs=1")
    try:
        return OmegaConf.to_container(OmegaConf.from_dotlist(list(overrides)), resolve=True)  # type: ignore[return-value]
    except Exception as err:
        raise ConfigError(f"overrides {' '.join(overrides)}: {type(err).__name__}: {err}") from None


def _merge(*layers: Any) -> dict[str, Any]:
    """OmegaConf's merge of plain mappings (nested mappings key by key, lists replaced), as plain dicts."""
    from omegaconf import OmegaConf

    return OmegaConf.to_container(OmegaConf.merge(*layers), resolve=True)  # type: ignore[return-value]


def _strict(values: dict[str, Any], defaults_file: Path, source: str) -> dict[str, Any]:
    """``values`` over the task's defaults; a key the defaults do not declare is a ConfigError."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    base = OmegaConf.merge(OmegaConf.create(COMMON_KEYS), OmegaConf.load(defaults_file))
    OmegaConf.set_struct(base, True)
    body = {k: v for k, v in values.items() if k not in _UNCHECKED}
    try:
        merged = OmegaConf.merge(base, body)
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", None) or ""
        if key:
            valid = ", ".join(sorted(str(k) for k in base))
            raise ConfigError(
                f"{source}: unknown key {key!r} (the task's keys are documented in "
                f"configs/evaluate/defaults/{defaults_file.name}; top-level: {valid})"
            ) from None
        raise ConfigError(f"{source}: {type(err).__name__}: {err}") from None
    out: dict[str, Any] = OmegaConf.to_container(merged, resolve=True)  # type: ignore[assignment]
    out.update({key: values[key] for key in _UNCHECKED if key in values})
    return out


#: Keys the task's defaults file does not list: the engine's section (checked by EngineConfig) and the
#: protocol and budget that load_recipe writes into the resolved recipe.
_UNCHECKED = ("train", "protocol", "budget")


def load_recipe(
    path: Path,
    protocol: str,
    budget: str,
    *,
    task: str | None = None,
    overrides: Sequence[str] = (),
) -> dict[str, Any]:
    """Resolve a recipe file for one protocol and budget into a plain dict (see module docstring).

    Args:
        path: the recipe file.
        protocol: a protocol the recipe has a section for.
        budget: ``full``, ``short`` or ``smoke``.
        task: the task whose defaults file (``configs/evaluate/defaults/<task>.yaml``) supplies every key
            the recipe leaves out and is the list of valid keys.
        overrides: ``key=value`` strings applied last (``saip evaluate ... train.epochs=1``).

    Raises:
        ConfigError: unreadable file, the protocol is not in the recipe, an unknown key, a bad override.
    """
    if protocol not in PROTOCOL_NAMES:
        raise ConfigError(f"unknown protocol {protocol!r}; valid protocols: {', '.join(PROTOCOL_NAMES)}")
    raw = read_yaml(path)
    sections = raw.get("protocols") or {}
    if protocol not in sections:
        valid = ", ".join(sections) or "(none)"
        raise ConfigError(f"{path}: recipe has no protocol {protocol!r}; it has: {valid}")
    common = {k: v for k, v in raw.items() if k not in ("protocols", "budgets")}
    resolved = _merge(common, sections[protocol] or {})
    budget_train = default_overrides(budget, resolved.get("train") or {})  # also validates the budget name
    own = ((raw.get("budgets") or {}).get(budget) or {}).get(protocol) or {}
    resolved = _merge(resolved, {"train": budget_train} if "train" in resolved else {}, own)
    defaults_file = task_defaults_path(task) if task else None
    if defaults_file is not None:
        resolved = _strict(resolved, defaults_file, str(path))
    from saip_bench.engine.params import check_hyperparameters

    check_hyperparameters(resolved, source=str(path))  # lr, weight decay, batch sizes, epochs, steps
    if overrides:
        extra = parse_overrides(overrides)
        if defaults_file is not None:
            _strict(extra, defaults_file, f"override {' '.join(overrides)}")
        check_hyperparameters(extra, source=f"override {' '.join(overrides)}")
        resolved = _merge(resolved, extra)
    if "train" in resolved:
        from saip_bench.engine import EngineConfig

        EngineConfig.from_dict(dict(resolved["train"]), source=f"{path}: train")  # strict keys and choices
    resolved["protocol"] = protocol
    resolved["budget"] = budget
    return resolved


#: Keys that change how a run is carried out but not its result: left out of the config digest (the skip key
#: and the run folder's name), so e.g. ``train.checkpoint_every=100`` added on a ``--resume`` finds its run.
OPERATIONAL_KEYS: tuple[tuple[str, str], ...] = (
    ("train", "checkpoint_every"),
    ("train", "log_every"),
    ("train", "tracker"),
    ("train", "tracker_dir"),
    ("train", "tracker_project"),
    ("data", "workers"),
)


def config_digest(resolved: dict[str, Any]) -> str:
    """The digest of a resolved recipe that identifies its result (without :data:`OPERATIONAL_KEYS`)."""
    from saip_bench.io import digest_obj

    kept = {k: dict(v) if isinstance(v, dict) else v for k, v in resolved.items()}
    for section, key in OPERATIONAL_KEYS:
        if isinstance(kept.get(section), dict):
            kept[section].pop(key, None)
    # A protocol that trains nothing has no train section but the one an override of these keys makes.
    if kept.get("train") == {} and resolved.get("train"):
        del kept["train"]
    return digest_obj(kept)


def scaled_size(img_size: tuple[int, int], scale: float, patch: int) -> tuple[int, int]:
    """``img_size`` x ``scale``, each side rounded to the nearest multiple of ``patch`` (at least one)."""
    height, width = (max(patch, int(round(side * scale / patch)) * patch) for side in img_size)
    return height, width
