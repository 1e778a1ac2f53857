"""A campaign through the real Slurm cluster: 2 backbones x 3 datasets, one job requeued mid-run, no rerun."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from saip_bench.cli.app import app
from tests.bench.conftest import write_bench_data, write_campaign
from tests.slurm_cluster import SlurmCluster

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def campaign_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_bench_data(tmp_path_factory.mktemp("slurm-bench-data"))


def _saip(*args: str):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def _states(jobs: Path) -> dict[str, dict]:
    out = {}
    for path in jobs.glob("*.state.json"):
        try:
            out[path.name.removesuffix(".state.json")] = json.loads(path.read_text())
        except ValueError:  # never half-written (atomic), but be safe while polling
            continue
    return out


@pytest.fixture
def cluster(slurm_cluster: SlurmCluster) -> Iterator[SlurmCluster]:
    """The session's cluster; whatever a test left queued is cancelled after it."""
    yield slurm_cluster
    slurm_cluster.cancel_all()


def test_slurm_campaign_requeue_and_rerun(cluster: SlurmCluster, campaign_data: Path, tmp_path: Path) -> None:
    slurm_cluster = cluster
    ws = tmp_path / "ws"
    slurm = {"partition": slurm_cluster.partition, "cpus_per_task": 1, "time_min": 10, "array_parallelism": 2}
    campaign = write_campaign(
        tmp_path / "c.yaml", campaign_data, ws, launcher={"name": "slurm", "slurm": slurm}
    )
    run = _saip("bench", "run", str(campaign))
    assert run.exit_code == 0, run.output
    assert "submitted 6 jobs as Slurm array" in run.output
    jobs = ws / "campaigns" / "t" / "jobs"
    submits = {
        p.name.removesuffix(".submit.json"): json.loads(p.read_text()) for p in jobs.glob("*.submit.json")
    }
    assert len(submits) == 6 and all("_" in s["slurm_id"] for s in submits.values())  # one array

    # Requeue the first job seen running (as a preemption would): it must come back and finish.
    requeued = None
    deadline = time.monotonic() + 120
    while requeued is None and time.monotonic() < deadline:
        for job_id, state in _states(jobs).items():
            if state.get("status") == "running" and job_id in submits:
                done = slurm_cluster.run("scontrol", "requeue", submits[job_id]["slurm_id"])
                if done.returncode == 0:
                    requeued = job_id
                    break
        time.sleep(0.05)
    assert requeued is not None, "no job was seen running to requeue"

    # Wait for the array to leave the queue: the requeued job runs a second time (SLURM_RESTART_COUNT=1),
    # finishing the evaluation or finding the record its first run wrote before the requeue took it.
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and slurm_cluster.run("squeue", "-h").stdout.strip():
        time.sleep(1)
    assert _states(jobs)[requeued].get("SLURM_RESTART_COUNT") == "1", _states(jobs)[requeued]
    status = _saip("bench", "status", str(campaign))
    assert "6 done, 0 running, 0 failed, 0 pending" in status.output, status.output

    report = _saip("report", "--workspace", str(ws), "--format", "csv")
    assert report.exit_code == 0, report.output
    from saip_bench.results import open_workspace_store

    records = open_workspace_store(ws).query()
    assert len(records) == 6  # the requeued job left one record, not two
    assert len({(r.backbone_name, r.dataset) for r in records}) == 6

    again = _saip("bench", "run", str(campaign))
    assert again.exit_code == 0 and "0 to start" in again.output and "submitted" not in again.output
    assert slurm_cluster.run("squeue", "-h").stdout.strip() == ""


def test_requeued_finetune_resumes_from_its_checkpoint(
    cluster: SlurmCluster, campaign_data: Path, tmp_path: Path
) -> None:
    """``scontrol requeue`` mid-fine-tune: the step finishes, last.pt is written, the job ends without a
    result, comes back and continues from that checkpoint; one record, which says it was resumed."""
    ws = tmp_path / "ws"
    slurm = {"partition": cluster.partition, "cpus_per_task": 1, "time_min": 10}
    campaign = write_campaign(
        tmp_path / "c.yaml",
        campaign_data,
        ws,
        backbones=["random:test_vit"],
        datasets=["market1501"],
        protocols=["finetune"],
        overrides=["eval.batch_size=16", "train.max_steps_per_epoch=60", "train.checkpoint_every=2"],
        launcher={"name": "slurm", "slurm": slurm},
    )
    assert _saip("bench", "run", str(campaign)).exit_code == 0
    jobs = ws / "campaigns" / "t" / "jobs"
    [submit] = [json.loads(p.read_text()) for p in jobs.glob("*.submit.json")]
    deadline = time.monotonic() + 120
    while not list((ws / "runs").rglob("last.pt")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list((ws / "runs").rglob("last.pt")), "the fine-tune never wrote a checkpoint"
    assert cluster.run("scontrol", "requeue", submit["slurm_id"]).returncode == 0
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and cluster.run("squeue", "-h").stdout.strip():
        time.sleep(1)
    [state] = _states(jobs).values()
    assert state["status"] == "done" and state.get("SLURM_RESTART_COUNT") == "1", state
    from saip_bench.results import open_workspace_store

    _saip("bench", "status", str(campaign))  # ingests
    [rec] = open_workspace_store(ws).query()
    assert rec.resumed and rec.resumed_from_step > 0, rec


def test_invalid_partition_submits_nothing(
    cluster: SlurmCluster, campaign_data: Path, tmp_path: Path
) -> None:
    slurm_cluster = cluster
    ws = tmp_path / "ws"
    launcher = {"name": "slurm", "slurm": {"partition": "no_such_partition"}}
    campaign = write_campaign(tmp_path / "c.yaml", campaign_data, ws, launcher=launcher)
    out = _saip("bench", "run", str(campaign))
    assert out.exit_code == 1
    lines = [line for line in out.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "invalid partition" in lines[0].lower(), out.output
    assert not list((ws / "campaigns" / "t" / "jobs").glob("*.submit.json"))
    assert slurm_cluster.run("squeue", "-h").stdout.strip() == ""
