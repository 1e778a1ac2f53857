"""Campaign tests: three small synthetic datasets and a campaign file writer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

#: Two backbones (timm's tiny test ViTs, random weights) x three datasets, frozen or linear: seconds each.
BACKBONES = ["random:test_vit", "random:test_vit2"]
DATASETS = ["market1501", "msmt17", "pa100k"]


def write_bench_data(root: Path) -> Path:
    """The campaign's three datasets, small, in their real formats under ``root``."""
    from saip_bench.datasets import DATASETS as REGISTRY

    for name in DATASETS:
        spec = REGISTRY.get(name)
        spec.write_synth(root / spec.folder, ids=8, images=64, seed=0)
    return root


@pytest.fixture(scope="session")
def bench_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_bench_data(tmp_path_factory.mktemp("bench-data"))


def write_campaign(path: Path, data_root: Path, workspace: Path, **keys: Any) -> Path:
    """A campaign file: the 2 x 3 smoke campaign, with ``keys`` replacing or adding top-level keys."""
    body: dict[str, Any] = {
        "name": "t",
        "data_root": str(data_root),
        "workspace": str(workspace),
        "backbones": BACKBONES,
        "datasets": DATASETS,
        "protocols": ["frozen", "linear"],
        "budgets": ["smoke"],
        "device": "cpu",
        "overrides": ["eval.batch_size=16"],
    }
    body.update(keys)
    path.write_text(yaml.safe_dump({k: v for k, v in body.items() if v is not None}, sort_keys=False))
    return path
