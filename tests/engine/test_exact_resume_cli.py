"""Done-when of exact resume: a smoke fine-tune killed with SIGTERM at a random step and resumed through the
CLI ends with exactly the metrics of an uninterrupted run, and its record says it was resumed and holds the
time of both attempts.

Every ``saip`` call is a fresh subprocess, as a user (or Slurm) runs it; the kill is timed by the run
directory's ``train.log``, which gets one line per optimizer step.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from saip_bench.results import ResultsStore

pytestmark = pytest.mark.slow

EPOCHS, STEPS_PER_EPOCH = 2, 5  # the synthetic PA-100K trainval split has 5 batches of 8 at --images 48
TOTAL = EPOCHS * STEPS_PER_EPOCH
OVERRIDES = [
    f"train.epochs={EPOCHS}",
    f"train.max_steps_per_epoch={STEPS_PER_EPOCH}",
    "train.checkpoint_every=1",
    "train.log_every=1",
]


def _saip(*args: str) -> list[str]:
    return [sys.executable, "-c", "from saip_bench.cli.app import main; main()", *args]


def _evaluate(data: Path, ws: Path, *extra: str) -> list[str]:
    return _saip(
        "evaluate", "--task", "attribute", "--dataset", "pa100k", "--protocol", "finetune",
        "--budget", "smoke", "--backbone", "random:test_vit", "--data-root", str(data),
        "--workspace", str(ws), "--device", "cpu", *OVERRIDES, *extra,
    )  # fmt: skip


def _steps_logged(ws: Path) -> int:
    logs = list((ws / "runs").glob("*/*/train.log"))
    if not logs:
        return 0
    return sum(" step " in line for line in logs[0].read_text(encoding="utf-8").splitlines())


def _run_dir(ws: Path) -> Path:
    [run_dir] = (ws / "runs").glob("*/*/")
    return run_dir


def test_sigterm_at_a_random_step_then_resume_gives_the_uninterrupted_metrics(tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    data = tmp_path / "data"
    subprocess.run(
        _saip("data", "synth", "--format", "pa100k", "--out", str(data), "--images", "48"),
        check=True, env=env, capture_output=True,
    )  # fmt: skip
    # Leave at least 3 steps after the signal, so it lands during training, not after the run ended.
    kill_after = random.SystemRandom().randint(1, TOTAL - 3)
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    uninterrupted = subprocess.Popen(
        _evaluate(data, whole), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    first = subprocess.Popen(_evaluate(data, cut), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while _steps_logged(cut) < kill_after and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    first.send_signal(signal.SIGTERM)
    _, err = first.communicate(timeout=120)
    errors = [line for line in err.decode().splitlines() if "error:" in line]
    assert first.returncode == 130, (
        f"not interrupted (signal after {kill_after} steps): {err.decode()[-2000:]}"
    )
    assert len(errors) == 1 and "interrupted at step" in errors[0] and "rerun with --resume" in errors[0], (
        errors
    )
    run_dir = _run_dir(cut)
    stopped = torch.load(run_dir / "last.pt", weights_only=True)
    assert kill_after <= stopped["step"] < TOTAL

    # Without --resume the unfinished run is not silently restarted.
    refused = subprocess.run(_evaluate(data, cut), env=env, capture_output=True, text=True)
    assert refused.returncode != 0
    assert str(run_dir / "last.pt") in refused.stderr.replace("\n", "")
    assert "pass --resume to continue it or --force to start over" in refused.stderr.replace("\n", "")

    resumed = subprocess.run(_evaluate(data, cut, "--resume"), env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    _, err = uninterrupted.communicate(timeout=120)
    assert uninterrupted.returncode == 0, err.decode()[-2000:]

    [reference] = ResultsStore(whole / "results.sqlite").query()
    [record] = ResultsStore(cut / "results.sqlite").query()
    assert record.metrics == reference.metrics  # exactly, every metric
    assert record.resumed and record.resumed_from_step == stopped["step"]
    assert not reference.resumed and reference.resumed_from_step == 0
    # The duration covers both attempts: at least the training time of both as the engine measured it.
    final = torch.load(run_dir / "last.pt", weights_only=True)
    assert final["step"] == TOTAL and final["elapsed_s"] > stopped["elapsed_s"] > 0
    assert record.duration_s >= final["elapsed_s"]
