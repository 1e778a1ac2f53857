"""Fixtures of the detection tests: one small synthetic CrowdHuman per session, private copies to damage."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from saip_bench.datasets import DATASETS


@pytest.fixture(scope="session")
def crowdhuman_master(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 crowded scenes: 18 train / 6 val."""
    out = tmp_path_factory.mktemp("ch") / "CrowdHuman"
    DATASETS.get("crowdhuman").write_synth(out, ids=1, images=24, seed=3)
    return out


@pytest.fixture
def crowdhuman_dir(crowdhuman_master: Path, tmp_path: Path) -> Path:
    """A private copy that a test may damage."""
    return Path(shutil.copytree(crowdhuman_master, tmp_path / "CrowdHuman"))
