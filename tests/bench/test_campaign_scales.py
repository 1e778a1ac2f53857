"""A campaign's scales: one job per cell probes every scale with one model; ``train_per_scale`` splits it."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from saip_bench.bench.campaign import load_campaign
from saip_bench.bench.jobs import Job, plan_campaign
from saip_bench.cli.app import app
from saip_bench.errors import ConfigError
from tests.bench.conftest import write_campaign


def _plan(bench_data: Path, tmp_path: Path, **keys):
    path = write_campaign(
        tmp_path / "c.yaml", bench_data, tmp_path / "ws", backbones=["random:test_vit"], datasets=["pa100k"],
        protocols=["linear"], **keys,
    )  # fmt: skip
    return plan_campaign(load_campaign(path))


def test_one_job_probes_every_scale_unless_trained_per_scale(bench_data: Path, tmp_path: Path) -> None:
    [probe] = _plan(bench_data, tmp_path, scales=[0.5, 1.0, 1.5]).jobs
    assert probe.scales == (0.5, 1.0, 1.5) and probe.scale == 1.0 and probe.scale_label == "1>0.5,1,1.5"
    assert [key[4:] for key in probe.keys] == [(0.5, 1.0), (1.0, 1.0), (1.5, 1.0)]  # (scale, trained at)
    assert "x1p0.5_1_1.5" in probe.id
    assert Job.from_dict(probe.to_dict()) == probe  # what a job file carries to a subprocess or Slurm
    per_scale = _plan(bench_data, tmp_path, scales=[0.5, 1.0], train_per_scale=True).jobs
    assert [(j.scales, j.scale, j.scale_label) for j in per_scale] == [
        ((0.5,), 0.5, "0.5"),
        ((1.0,), 1.0, "1"),
    ]
    assert [j.keys[0][4:] for j in per_scale] == [(0.5, 0.5), (1.0, 1.0)]
    [plain] = _plan(bench_data, tmp_path).jobs  # scale 1 alone: the same job either way
    assert plain.id == per_scale[1].id and plain.keys == per_scale[1].keys
    with pytest.raises(ConfigError, match="train_per_scale must be true or false"):
        _plan(bench_data, tmp_path, train_per_scale="yes")


@pytest.mark.slow
def test_a_probe_job_records_every_scale_and_is_then_recorded(bench_data: Path, tmp_path: Path) -> None:
    path = write_campaign(
        tmp_path / "c.yaml", bench_data, tmp_path / "ws", backbones=["random:test_vit"], datasets=["pa100k"],
        protocols=["linear"], scales=[0.5, 1.0],
    )  # fmt: skip
    run = CliRunner().invoke(app, ["bench", "run", str(path)], catch_exceptions=False)
    assert run.exit_code == 0, run.output
    assert "1 done, 0 running, 0 failed, 0 pending" in run.output
    plan = plan_campaign(load_campaign(path))
    [job] = plan.jobs
    assert job.id in plan.recorded and plan.recorded[job.id].scale == 1.0 and not plan.missing
    from saip_bench.results import open_workspace_store

    records = open_workspace_store(tmp_path / "ws").query()
    assert sorted((r.scale, r.train_scale) for r in records) == [(0.5, 1.0), (1.0, 1.0)]
    assert len({r.train_run for r in records}) == 1
