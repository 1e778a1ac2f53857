"""A campaign through the local launcher: plan, run, rerun (nothing to do), status, seeds; bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from saip_bench.cli.app import app
from tests.bench.conftest import write_campaign


def _saip(*args: str):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def _records(ws: Path) -> list:
    from saip_bench.results import open_workspace_store

    return open_workspace_store(ws).query()


@pytest.mark.slow
def test_plan_run_rerun_status(bench_data: Path, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    campaign = write_campaign(tmp_path / "c.yaml", bench_data, ws)
    plan = _saip("bench", "plan", str(campaign))
    assert plan.exit_code == 0, plan.output
    assert "6 to run, 0 recorded" in plan.output
    assert "pa100k frozen: n/a" in plan.output  # the protocol a dataset lacks is named, not an error
    assert not ws.exists()  # planning writes nothing

    run = _saip("bench", "run", str(campaign))
    assert run.exit_code == 0, run.output
    records = _records(ws)
    assert len(records) == 6
    cells = {(r.backbone_name, r.dataset, r.protocol) for r in records}
    assert len(cells) == 6 and {p for _, _, p in cells} == {"frozen", "linear"}
    assert len(list((ws / "records").rglob("*.json"))) == 6  # one record file each, ingested once
    assert "6 done, 0 running, 0 failed, 0 pending" in run.output

    again = _saip("bench", "run", str(campaign))
    assert again.exit_code == 0 and "0 to start" in again.output
    assert len(_records(ws)) == 6
    replan = _saip("bench", "plan", str(campaign))
    assert "0 to run, 6 recorded" in replan.output

    # A second seed is a new job per cell; the record keeps the seed.
    seeds = write_campaign(tmp_path / "s.yaml", bench_data, ws, datasets=["market1501"], seeds=[0, 1])
    plan2 = _saip("bench", "plan", str(seeds))
    assert "2 to run, 2 recorded" in plan2.output, plan2.output
    assert _saip("bench", "run", str(seeds)).exit_code == 0
    market = [r for r in _records(ws) if r.dataset == "market1501"]
    assert sorted((r.backbone_name, r.seed) for r in market) == sorted(
        (b, s) for b in ("random:test_vit", "random:test_vit2") for s in (0, 1)
    )
    # Status from a fresh process, as a user types it.
    status = subprocess.run(
        [sys.executable, "-m", "saip_bench.cli.app", "bench", "status", str(seeds)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert status.returncode == 0, status.stderr
    assert "4 done, 0 running, 0 failed, 0 pending" in status.stdout


@pytest.mark.slow
def test_pinned_gpus_run_side_by_side(bench_data: Path, tmp_path: Path) -> None:
    """``gpus: [0, 1]``: one subprocess per device at a time, pinned with CUDA_VISIBLE_DEVICES (CPU here)."""
    ws = tmp_path / "ws"
    campaign = write_campaign(
        tmp_path / "c.yaml",
        bench_data,
        ws,
        backbones=["random:test_vit"],
        datasets=["market1501", "msmt17"],
        launcher={"name": "local", "gpus": [0, 1]},
    )
    run = _saip("bench", "run", str(campaign))
    assert run.exit_code == 0, run.output
    assert {r.dataset for r in _records(ws)} == {"market1501", "msmt17"}
    jobs = ws / "campaigns" / "t" / "jobs"
    gpus = sorted(json.loads(p.read_text())["gpu"] for p in jobs.glob("*.submit.json"))
    assert gpus == [0, 1]
    states = [json.loads(p.read_text()) for p in jobs.glob("*.state.json")]
    assert [s["status"] for s in states] == ["done", "done"]
    assert len({s["pid"] for s in states}) == 2  # two processes, not this one


def test_campaign_file_errors(bench_data: Path, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    cases = {
        "unknown key": ({"sedes": [0]}, "unknown key 'sedes'"),
        "wrong type": ({"seeds": "zero"}, "seeds must be a list of integers"),
        "unknown dataset": ({"datasets": ["market"]}, "unknown dataset 'market'"),
        "unknown launcher": ({"launcher": {"name": "pbs"}}, "unknown launcher 'pbs'"),
        "launcher key": ({"launcher": {"gpu": [0]}}, "unknown key launcher.gpu"),
        "slurm key": ({"launcher": {"slurm": {"partiton": "x"}}}, "partiton"),
        "budget": ({"budgets": ["tiny"]}, "unknown budget 'tiny'"),
        "override": ({"overrides": ["train.epochs"]}, "is not key=value"),
        "bad override key": ({"overrides": ["train.epoch=1"]}, "unknown key(s) epoch"),
        "backbone": ({"backbones": ["no/such/backbone.pt"]}, "backbone.pt"),
        "protocol of a named dataset": ({"datasets": ["pa100k"], "protocols": ["frozen"]}, "not frozen"),
    }
    for name, (keys, expected) in cases.items():
        campaign = write_campaign(tmp_path / f"{name}.yaml", bench_data, ws, **keys)
        for command in ("plan", "run"):
            out = _saip("bench", command, str(campaign))
            assert out.exit_code == 1, (name, out.output)
            lines = [line for line in out.output.splitlines() if line.strip()]
            assert len(lines) == 1 and lines[0].startswith("error:") and expected in lines[0], (name, lines)
    missing = write_campaign(tmp_path / "m.yaml", tmp_path / "empty", ws, datasets=["market1501"])
    (tmp_path / "empty").mkdir()
    out = _saip("bench", "run", str(missing))
    assert out.exit_code == 1 and "no Market-1501 folder found" in out.output
    assert not ws.exists()  # nothing ran, nothing was written


@pytest.mark.slow
def test_torchrun_launcher_runs_a_job_over_two_processes(bench_data: Path, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    campaign = write_campaign(
        tmp_path / "c.yaml",
        bench_data,
        ws,
        backbones=["random:test_vit"],
        datasets=["market1501"],
        launcher={"name": "torchrun", "nproc_per_node": 2},
    )
    run = _saip("bench", "run", str(campaign))
    assert run.exit_code == 0, run.output
    [rec] = _records(ws)
    assert rec.dataset == "market1501" and rec.protocol == "frozen"
    log = next((ws / "campaigns" / "t" / "jobs").glob("*.log")).read_text()
    assert "error" not in log.lower(), log
