"""Recipe YAML files, installed as package data so wheel installs find them (``saip_bench.configs``)."""

from importlib.resources import files
from pathlib import Path


def config_path(relative: str) -> Path:
    """Return the path of a shipped config, e.g. ``config_path("pretrain/smoke_cpu.yaml")``."""
    path = Path(str(files(__name__).joinpath(relative)))
    if not path.is_file():
        raise FileNotFoundError(f"{relative}: no such config shipped with saip_bench")
    return path
