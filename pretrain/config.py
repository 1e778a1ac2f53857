"""Pretraining configuration: defaults YAML + a recipe YAML + command-line ``key=value`` overrides.

The defaults file names every key there is; a recipe or an override that names any other key is a
:class:`ConfigError` naming it (a typo never silently trains the default). The resolved config is written into
the run directory so a run can be repeated from its folder alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from saip_bench.engine.params import check_hyperparameters, check_number
from saip_bench.errors import ConfigError
from saip_bench.io import atomic_write_text, digest_obj

RESOLVED_NAME = "config.yaml"


def configs_dir() -> Path:
    """The folder holding the shipped recipes (``configs/pretrain``)."""
    return Path(str(resources.files("saip_bench.configs") / "pretrain"))


def defaults_path() -> Path:
    return configs_dir() / "defaults.yaml"


def resolve_recipe(recipe: str | Path) -> Path:
    """A recipe path as given, or a shipped recipe's name (``smoke_cpu`` -> configs/pretrain/...yaml)."""
    path = Path(recipe)
    if path.is_file():
        return path
    for candidate in (configs_dir() / path.name, configs_dir() / f"{path.name}.yaml"):
        if candidate.is_file():
            return candidate
    shipped = ", ".join(sorted(p.stem for p in configs_dir().glob("*.yaml") if p.stem != "defaults"))
    raise ConfigError(f"{recipe}: no such config file (shipped recipes: {shipped})")


def _load_yaml(path: Path) -> DictConfig:
    try:
        cfg = OmegaConf.load(path)
    except Exception as err:  # yaml's parser errors, OSError, OmegaConf's: all mean "not a usable file"
        raise ConfigError(f"{path}: not a readable YAML config ({_one_line(err)})") from None
    if not isinstance(cfg, DictConfig):
        raise ConfigError(f"{path}: a config must be a mapping of keys to values")
    return cfg


def _one_line(err: BaseException) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


def _merge(base: DictConfig, extra: DictConfig | dict, source: str) -> DictConfig:
    try:
        return OmegaConf.merge(base, extra)  # struct mode: unknown keys raise
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", None) or ""
        if "not in struct" in str(err) or "Key '" in str(err):
            raise ConfigError(f"{source}: unknown config key '{key}'") from None
        raise ConfigError(f"{source}: bad value for '{key}' ({_one_line(err)})") from None


def _kind_ok(default: Any, value: Any) -> bool:
    if value is None or default is None:
        return True  # null means "derive it" (e.g. steps from epochs) wherever the defaults allow it
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, str):  # a switch defaulting to auto (train.compile) also takes true / false
        return isinstance(value, str) or (default == "auto" and isinstance(value, bool))
    if isinstance(default, list):
        return isinstance(value, list)
    return True


def _check_types(defaults: dict[str, Any], merged: dict[str, Any], prefix: str = "") -> None:
    """Every value must have its default's type (YAML-loaded configs are untyped in OmegaConf)."""
    for key, default in defaults.items():
        value = merged.get(key)
        name = f"{prefix}{key}"
        if isinstance(default, dict):
            if not isinstance(value, dict):
                raise ConfigError(f"config: '{name}' must be a mapping, got {value!r}")
            _check_types(default, value, f"{name}.")
        elif not _kind_ok(default, value):
            raise ConfigError(f"config: '{name}'={value!r} should be a {type(default).__name__}")


#: Keys whose default is null ("derive it"), so the defaults' types cannot check them.
_COUNTS_OR_NULL = ("train.steps", "train.warmup_steps", "train.threads")
_NUMBERS_OR_NULL = ("train.malloc_mmap_threshold_mb",)


def _check_layer(defaults: dict[str, Any], layer: dict[str, Any], source: str, prefix: str = "") -> None:
    """The values one source sets (a recipe file, an override), checked before they merge into the others.

    Each must have its default's type and the numbers their range (a finite, non-negative learning rate...),
    so the message names the file or override the bad value came from.
    """
    for key, value in layer.items():
        name = f"{prefix}{key}"
        if key not in defaults or (isinstance(value, str) and "${" in value):
            continue  # unknown keys are the merge's error; interpolations are checked once resolved
        default = defaults[key]
        if isinstance(default, dict):
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: '{name}' must be a mapping, got {value!r}")
            _check_layer(default, value, source, f"{name}.")
        elif not _kind_ok(default, value):
            raise ConfigError(f"{source}: '{name}'={value!r} should be a {type(default).__name__}")
        elif name in _COUNTS_OR_NULL and value is not None:
            check_number(value, key=name, source=source, integer=True)
        elif name in _NUMBERS_OR_NULL and value is not None:
            check_number(value, key=name, source=source)
    if not prefix:
        check_hyperparameters(layer, source=source)


def load_config(recipe: str | Path | None = None, overrides: Sequence[str] = ()) -> DictConfig:
    """Build the run's config.

    Args:
        recipe: a YAML file (or a shipped recipe's name) merged over the defaults; None for defaults only.
        overrides: ``key=value`` strings (OmegaConf dotlist, e.g. ``train.steps=20``), applied last.

    Returns:
        The merged, resolved, read-only config.

    Raises:
        ConfigError: a file is unreadable, a key is unknown, or a value has the wrong type or range (a NaN
            learning rate, a batch size of 0); the message names the file or override it came from.
    """
    cfg = _load_yaml(defaults_path())
    defaults = to_dict(cfg)
    OmegaConf.set_struct(cfg, True)
    if recipe is not None:
        path = resolve_recipe(recipe)
        layer = _load_yaml(path)
        cfg = _merge(cfg, layer, str(path))
        _check_layer(defaults, OmegaConf.to_container(layer), str(path))  # type: ignore[arg-type]
    for item in overrides:
        if "=" not in item or item.startswith("="):
            raise ConfigError(f"override {item!r}: expected key=value")
        try:
            dot = OmegaConf.from_dotlist([item])
        except OmegaConfBaseException as err:
            raise ConfigError(f"override {item!r}: {_one_line(err)}") from None
        cfg = _merge(cfg, dot, f"override {item!r}")
        _check_layer(defaults, OmegaConf.to_container(dot), f"override {item!r}")  # type: ignore[arg-type]
    try:
        OmegaConf.resolve(cfg)
    except OmegaConfBaseException as err:
        raise ConfigError(f"config: cannot resolve interpolation ({_one_line(err)})") from None
    _check_types(defaults, to_dict(cfg))
    OmegaConf.set_readonly(cfg, True)
    return cfg


def to_dict(cfg: DictConfig) -> dict[str, Any]:
    """The config as plain python containers."""
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]


def config_digest(cfg: DictConfig) -> str:
    """Stable short digest of the resolved config (recorded in the backbone export's metadata)."""
    return digest_obj(to_dict(cfg))


def write_resolved(cfg: DictConfig, run_dir: str | Path) -> Path:
    """Write the resolved config to ``RUN_DIR/config.yaml`` atomically and return its path."""
    path = Path(run_dir) / RESOLVED_NAME
    atomic_write_text(path, OmegaConf.to_yaml(cfg, resolve=True))
    return path
