"""Fixtures of the text-retrieval tests: tiny synthetic CUHK-PEDES and ICFG-PEDES folders."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from saip_bench.datasets import DATASETS


@pytest.fixture(scope="session")
def cuhk_master(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cuhk") / "CUHK-PEDES"
    DATASETS.get("cuhk_pedes").write_synth(out, ids=6, images=18, seed=3)
    return out


@pytest.fixture(scope="session")
def icfg_master(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("icfg") / "ICFG-PEDES"
    DATASETS.get("icfg_pedes").write_synth(out, ids=6, images=18, seed=3)
    return out


@pytest.fixture
def cuhk_dir(cuhk_master: Path, tmp_path: Path) -> Path:
    """A private copy of an 18-image synthetic CUHK-PEDES that a test may damage."""
    return Path(shutil.copytree(cuhk_master, tmp_path / "CUHK-PEDES"))


@pytest.fixture
def icfg_dir(icfg_master: Path, tmp_path: Path) -> Path:
    """A private copy of an 18-image synthetic ICFG-PEDES that a test may damage."""
    return Path(shutil.copytree(icfg_master, tmp_path / "ICFG-PEDES"))


@pytest.fixture(scope="session")
def cuhk_big(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 identities, 160 images: 24 / 8 / 8 identities in train / val / test."""
    out = tmp_path_factory.mktemp("cuhk_big") / "CUHK-PEDES"
    DATASETS.get("cuhk_pedes").write_synth(out, ids=40, images=160, seed=1)
    return out


@pytest.fixture(scope="session")
def cuhk_wide(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """320 identities, 2 images each: 192 / 64 / 64 identities in train / val / test.

    128 test images and 256 test captions: chance R1 is 1/64 and one caption more or less is 0.4 points, so
    R1 has the resolution 8 test identities lack (there one caption is 1.6 points and chance 1/8).
    """
    out = tmp_path_factory.mktemp("cuhk_wide") / "CUHK-PEDES"
    DATASETS.get("cuhk_pedes").write_synth(out, ids=320, images=640, seed=1)
    return out
