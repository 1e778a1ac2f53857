"""Shared fixtures of the re-ID tests: small synthetic datasets in the real formats."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def synth_market(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic Market-1501 folder: 32 identities (16 train, 16 test), about 384 crops."""
    from saip_bench.datasets import DATASETS

    out = tmp_path_factory.mktemp("market") / "Market-1501-v15.09.15"
    DATASETS.get("market1501").write_synth(out, ids=32, images=384, seed=0)
    return out


@pytest.fixture(scope="session")
def synth_msmt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic MSMT17_V1 folder: 8 identities, 96 crops."""
    from saip_bench.datasets import DATASETS

    out = tmp_path_factory.mktemp("msmt") / "MSMT17_V1"
    DATASETS.get("msmt17").write_synth(out, ids=8, images=96, seed=0)
    return out
