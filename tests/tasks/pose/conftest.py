"""Fixtures of the pose-task tests: tiny synthetic COCO-Keypoints / COCO-WholeBody folders."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from saip_bench.datasets import DATASETS


@pytest.fixture(scope="session")
def keypoints_master(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 10-image synthetic COCO-Keypoints (8 train / 2 val scenes)."""
    out = tmp_path_factory.mktemp("ck") / "coco"
    DATASETS.get("coco_keypoints").write_synth(out, ids=1, images=10, seed=1)
    return out


@pytest.fixture(scope="session")
def wholebody_master(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 10-image synthetic COCO-WholeBody (8 train / 2 val scenes)."""
    out = tmp_path_factory.mktemp("cw") / "coco_wholebody"
    DATASETS.get("coco_wholebody").write_synth(out, ids=1, images=10, seed=1)
    return out


@pytest.fixture
def keypoints_dir(keypoints_master: Path, tmp_path: Path) -> Path:
    """A private copy that a test may damage."""
    return Path(shutil.copytree(keypoints_master, tmp_path / "coco"))


@pytest.fixture
def wholebody_dir(wholebody_master: Path, tmp_path: Path) -> Path:
    """A private copy that a test may damage."""
    return Path(shutil.copytree(wholebody_master, tmp_path / "coco_wholebody"))
