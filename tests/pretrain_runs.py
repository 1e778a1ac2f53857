"""The reference run the launcher tests compare against: a 3-step smoke pretraining on 2 local processes.

Multi-node (tests/engine/test_multinode.py) and Slurm (tests/slurm/test_pretrain_slurm.py) runs of the same
config must give its export and per-step weight digests; it is run once per test session for both.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.pretrain.test_distributed import write_lup

#: A tiny ViT on tiny views (as tests/pretrain/test_distributed.py), per-rank weight digests every step.
SMALL = [
    "device=cpu", "model.depth=2", "model.embed_dim=32", "model.num_heads=2", "model.mid_block=0",
    "heads.out_dim=64", "heads.hidden_dim=32", "heads.bottleneck_dim=16", "views.local_crops=3",
    "train.batch_size=2", "train.threads=1", "train.record_digests=true", "train.tensorboard=false",
]  # fmt: skip
STEPS = 3
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}

_reference: Path | None = None


def saip(*args: str) -> list[str]:
    """The ``saip`` command line in a fresh interpreter."""
    return [sys.executable, "-m", "saip_bench.cli.app", *args]


def lup(folder: Path) -> Path:
    """The run's images (the same bytes for every call)."""
    if not folder.is_dir():
        write_lup(folder)
    return folder


def pretrain_args(data: Path, out: Path) -> list[str]:
    """``saip pretrain`` of the reference config, without the launcher options."""
    return [
        "pretrain",
        "-c",
        "smoke_cpu",
        "--data",
        str(data),
        "--out",
        str(out),
        "--steps",
        str(STEPS),
        *SMALL,
    ]


def reference_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run directory of ``--nproc-per-node 2`` (run on first use in the session)."""
    global _reference
    if _reference is None or not (_reference / "backbone.safetensors").is_file():
        root = tmp_path_factory.mktemp("reference")
        out = root / "run"
        res = subprocess.run(
            saip(*pretrain_args(lup(root / "LUP"), out), "--nproc-per-node", "2"),
            env=ENV, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
        _reference = out
    return _reference


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
