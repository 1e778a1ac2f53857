"""Tiny synthetic Fashionpedia folders shared by the fashion tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from saip_bench.datasets import DATASETS


@pytest.fixture(scope="session")
def fashion_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 images of 4 identities (2 validation), written by the real writer; tests must not modify it."""
    out = tmp_path_factory.mktemp("fashion") / "Fashionpedia"
    DATASETS.get("fashionpedia").write_synth(out, ids=4, images=12, seed=3)
    return out
