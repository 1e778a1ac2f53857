"""`saip pretrain --launcher slurm` on a real one-node Slurm cluster: 2 tasks (CPU, gloo) give the export of
`--nproc-per-node 2`; without --wait the job id and its log are printed at once."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from saip_bench.launch.slurm import GONE, job_states
from tests.pretrain_runs import ENV, lup, pretrain_args, reference_run, saip, sha256


@pytest.mark.slow
def test_two_slurm_tasks_equal_two_local_processes(
    slurm_cluster, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    reference = reference_run(tmp_path_factory)  # --nproc-per-node 2, the same config
    out = tmp_path / "slurm-run"
    slurm = ["--launcher", "slurm", "--nproc-per-node", "2", "--slurm-partition", slurm_cluster.partition]
    res = subprocess.run(
        saip(*pretrain_args(lup(tmp_path / "LUP"), out), *slurm, "--time-min", "10", "--wait"),
        env={**ENV, **slurm_cluster.env}, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:] + slurm_cluster.log_tail()
    job = re.search(r"submitted Slurm job (\d+): 2 task\(s\) on 1 node\(s\); log: (\S+)", res.stdout)
    assert job is not None, res.stdout
    assert Path(job.group(2)).is_file() and Path(job.group(2)).parent == out / "slurm"
    assert "3 steps" in res.stdout and str(out / "backbone.safetensors") in res.stdout
    rows = [json.loads(line) for line in (out / "digests.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows] == [1, 2, 3]
    assert all(row["ranks"][0] == row["ranks"][1] for row in rows), "the Slurm tasks' weights differ"
    assert (out / "digests.jsonl").read_text() == (reference / "digests.jsonl").read_text()
    assert sha256(out / "backbone.safetensors") == sha256(reference / "backbone.safetensors")


@pytest.mark.slow
def test_without_wait_the_job_id_and_log_come_back_at_once(slurm_cluster, tmp_path: Path) -> None:
    out = tmp_path / "run"
    slurm = ["--launcher", "slurm", "--slurm-partition", slurm_cluster.partition]
    res = subprocess.run(
        saip(*pretrain_args(lup(tmp_path / "LUP"), out), *slurm),
        env={**ENV, **slurm_cluster.env}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    job = re.fullmatch(r"submitted Slurm job (\d+): 1 task\(s\) on 1 node\(s\); log: (\S+)\n", res.stdout)
    assert job is not None, res.stdout
    assert Path(job.group(2)).parent == out / "slurm"
    assert job_states([job.group(1)])[job.group(1)] != GONE  # Slurm has it (queued, running or just done)
    slurm_cluster.run("scancel", job.group(1))
