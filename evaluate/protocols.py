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

:func:`load_recipe` merges, in order: the top-level keys (without ``protocols``/``budgets``), the protocol's
section, the budget's defaults (:mod:`saip_bench.evaluate.budgets`) and the recipe's own budget overrides.

Adapters are named ``"module:Class"`` so nothing task-specific is imported until it is evaluated. The
attribute task provides ``saip_bench.tasks.attribute.adapter:AttributeAdapter`` and the recipes
``configs/evaluate/attribute_pa100k_256x128.yaml`` and ``configs/evaluate/attribute_peta_zs_256x192.yaml``.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from saip_bench.dataset_spec import DatasetSpec
from saip_bench.datasets import DATASETS
from saip_bench.errors import ConfigError
from saip_bench.evaluate.adapter import PROTOCOL_NAMES
from saip_bench.evaluate.budgets import default_overrides
from saip_bench.registry import Registry

T = TypeVar("T")


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


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """A new dict: ``base`` with ``override`` merged in, nested dicts merged key by key."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


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


def _strict(resolved: dict[str, Any], defaults_file: Path, source: str) -> dict[str, Any]:
    """``resolved`` over the task's defaults; a key the defaults do not declare is a ConfigError."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    base = OmegaConf.merge(OmegaConf.create(COMMON_KEYS), OmegaConf.load(defaults_file))
    OmegaConf.set_struct(base, True)
    body = {k: v for k, v in resolved.items() if k not in ("train", "protocol", "budget")}
    try:
        merged = OmegaConf.merge(base, body)
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", None) or ""
        valid = ", ".join(sorted(str(k) for k in base))
        if key:
            raise ConfigError(
                f"{source}: unknown key {key!r} (the task's keys are documented in {defaults_file.name}; "
                f"top-level: {valid})"
            ) from None
        raise ConfigError(f"{source}: {type(err).__name__}: {err}") from None
    out: dict[str, Any] = OmegaConf.to_container(merged, resolve=True)  # type: ignore[assignment]
    for key in ("train", "protocol", "budget"):
        if key in resolved:
            out[key] = resolved[key]
    return out


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
    resolved = deep_merge(common, sections[protocol] or {})
    if "train" in resolved:
        resolved["train"] = {**resolved["train"], **default_overrides(budget, resolved["train"])}
    else:
        default_overrides(budget, {})  # validates the budget name
    own = ((raw.get("budgets") or {}).get(budget) or {}).get(protocol) or {}
    resolved = deep_merge(resolved, own)
    if overrides:
        resolved = deep_merge(resolved, parse_overrides(overrides))
    defaults_file = task_defaults_path(task) if task else None
    if defaults_file is not None:
        resolved = _strict(resolved, defaults_file, str(path))
    if "train" in resolved:
        from saip_bench.engine import EngineConfig

        EngineConfig.from_dict(dict(resolved["train"]), source=f"{path}: train")  # strict keys and choices
    resolved["protocol"] = protocol
    resolved["budget"] = budget
    return resolved


def scaled_size(img_size: tuple[int, int], scale: float, patch: int) -> tuple[int, int]:
    """``img_size`` x ``scale``, each side rounded to the nearest multiple of ``patch`` (at least one)."""
    height, width = (max(patch, int(round(side * scale / patch)) * patch) for side in img_size)
    return height, width


@dataclass(frozen=True)
class LoaderSettings:
    """The ``loader`` section of a fine-tuning recipe."""

    batch_size: int = 64


@dataclass(frozen=True)
class AugmentSettings:
    """The ``augment`` section: pad + random crop, horizontal flip (evaluate.images.train_transform)."""

    pad: int = 10
    flip: float = 0.5


def recipe_settings(recipe: dict[str, Any], name: str, cls: type[T]) -> T:
    """Build the settings dataclass ``cls`` from the recipe section ``name`` (missing = defaults).

    Raises:
        ConfigError: the section is not a mapping, or names a key ``cls`` does not have (the message lists
            the valid keys, so a typo in a recipe fails before any training).
    """
    values = recipe.get(name) or {}
    if not isinstance(values, dict):
        raise ConfigError(f"recipe section {name!r} must be a mapping, got {type(values).__name__}")
    valid = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - valid)
    if unknown:
        raise ConfigError(
            f"recipe section {name!r}: unknown key(s) {', '.join(unknown)}; valid: {', '.join(sorted(valid))}"
        )
    return cls(**values)
