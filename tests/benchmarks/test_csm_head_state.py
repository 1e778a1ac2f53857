"""benchmarks/csm_head_state.py: the collapse measures on hand-made distributions, and a run on a real
(2-step smoke) pretraining checkpoint as a user types it."""

from __future__ import annotations

import importlib.util
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "csm_head_state.py"


def _module():
    spec = importlib.util.spec_from_file_location("csm_head_state", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def test_the_measures_read_uniform_one_hot_and_healthy_heads():
    head_state = _module().head_state
    uniform = head_state(torch.full((4, 8), 1 / 8))  # every image: every prototype equally
    assert uniform["mean H(p_i)"] == pytest.approx(math.log(8)) and uniform[
        "mutual information"
    ] == pytest.approx(0)
    same = head_state(torch.eye(8)[[3, 3, 3, 3]])  # every image: prototype 3, surely
    assert same["H(mean p)"] == pytest.approx(0, abs=1e-6) and same["distinct argmax"] == 1
    healthy = head_state(torch.eye(8)[[0, 1, 2, 3]])  # each image its own prototype: log 4 nats apart
    assert healthy["mutual information"] == pytest.approx(math.log(4)) and healthy["distinct argmax"] == 4


def test_it_reads_a_smoke_pretraining_checkpoint(tmp_path: Path) -> None:
    run = lambda *args: subprocess.run(  # noqa: E731
        [*args], cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False
    )
    saip = Path(sys.executable).with_name("saip")
    assert (
        run(str(saip), "data", "synth", "--format", "lup", "--out", "data", "--images", "16").returncode == 0
    )
    trained = run(
        str(saip), "pretrain", "--config", "smoke_cpu", "--data", "data/LUP", "--out", "r", "--steps", "2"
    )
    assert trained.returncode == 0, trained.stderr
    done = run(sys.executable, str(SCRIPT), "r/checkpoint.pt", "--images", "data/LUP")
    assert done.returncode == 0, done.stderr
    assert re.search(r"K = \d+ \(log K [0-9.]+\)", done.stdout)
    line = (
        r"^\s+(teacher|student): mean H\(p_i\) ([0-9.]+), H\(mean p\) ([0-9.]+), "
        r"mutual information (-?[0-9.]+), distinct argmax (\d+)$"
    )
    sides = re.findall(line, done.stdout, flags=re.M)
    assert [s[0] for s in sides] == ["teacher", "student"]
    for _, per_image, of_mean, mi, distinct in sides:
        assert float(of_mean) >= float(per_image) - 1e-3 and 1 <= int(distinct) <= 16
        assert float(mi) == pytest.approx(float(of_mean) - float(per_image), abs=0.02)
    missing = run(sys.executable, str(SCRIPT), "r/checkpoint.pt", "--images", "missing")
    assert missing.returncode != 0 and "missing: not a folder" in missing.stderr
    assert "Traceback" not in missing.stderr
