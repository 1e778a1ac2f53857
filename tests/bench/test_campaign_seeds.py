"""``saip bench run|plan --seeds N`` and the random-init row over seeds: one init per seed, one report row."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from saip_bench.bench.campaign import load_campaign
from saip_bench.bench.jobs import plan_campaign
from saip_bench.cli.app import app
from saip_bench.errors import ConfigError
from tests.bench.conftest import write_campaign

SPEC = "random:test_vit"


def _tiny(tmp_path: Path, data_root: Path, **keys: object) -> Path:
    """The smallest campaign: one random backbone, frozen Market-1501 (trains nothing), the file's seed 5."""
    keys = {"backbones": [SPEC], "datasets": ["market1501"], "protocols": ["frozen"], "seeds": [5], **keys}
    return write_campaign(tmp_path / "c.yaml", data_root, tmp_path / "ws", **keys)


def test_seeds_n_replaces_the_file_seeds(bench_data: Path, tmp_path: Path) -> None:
    path = _tiny(tmp_path, bench_data)
    assert load_campaign(path).seeds == (5,)
    assert load_campaign(path, seeds=3).seeds == (0, 1, 2)
    for bad in (0, -2):
        with pytest.raises(ConfigError, match=rf"^--seeds must be an integer >= 1 .*got {bad}$"):
            load_campaign(path, seeds=bad)


def test_a_bare_random_backbone_gets_one_init_per_job_seed(bench_data: Path, tmp_path: Path) -> None:
    from saip_bench.backbones import load_backbone

    path = _tiny(tmp_path, bench_data, backbones=[SPEC, f"{SPEC}@7"])
    jobs = plan_campaign(load_campaign(path, seeds=2)).jobs
    bare = {job.seed: job for job in jobs if job.backbone == SPEC}
    fixed = {job.seed: job for job in jobs if job.backbone != SPEC}
    assert sorted(bare) == sorted(fixed) == [0, 1]
    assert bare[0].backbone_digest == load_backbone(SPEC).digest  # seed 0: the network it always was
    assert bare[1].backbone_digest == load_backbone(f"{SPEC}@1").digest != bare[0].backbone_digest
    assert fixed[0].backbone_digest == fixed[1].backbone_digest  # @7: one init for every seed
    assert len({job.id for job in jobs}) == 4


@pytest.mark.slow
def test_seeds_2_in_a_fresh_process_records_two_inits_and_one_row(bench_data: Path, tmp_path: Path) -> None:
    from saip_bench.report.table import build_report_table
    from saip_bench.results import open_workspace_store

    path = _tiny(tmp_path, bench_data)
    ws = tmp_path / "ws"
    run = subprocess.run(
        [sys.executable, "-m", "saip_bench.cli.app", "bench", "run", str(path), "--seeds", "2"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "2 done, 0 running, 0 failed, 0 pending" in run.stdout
    records = open_workspace_store(ws).query()
    assert sorted(r.seed for r in records) == [0, 1]  # --seeds 2 replaced the file's [5]
    assert {r.backbone_name for r in records} == {SPEC}
    assert len({r.backbone_digest for r in records}) == 2  # each seed its own init...
    assert len({r.train_run for r in records}) == 2  # ...and its own run folder
    [row] = build_report_table(records).rows  # ...and one report row of both
    cell = row.cells["market1501"]
    assert row.labels[0] == SPEC and cell.n == 2 and cell.seeds == (0, 1)

    # The recorded seeds are kept: a third seed is one job, nothing of seeds 0 and 1 runs again.
    runner = CliRunner()
    more = runner.invoke(app, ["bench", "plan", str(path), "--seeds", "3"], catch_exceptions=False)
    assert more.exit_code == 0 and "1 to run, 2 recorded" in more.output, more.output
    bad = runner.invoke(app, ["bench", "run", str(path), "--seeds", "0"])
    assert bad.exit_code == 1 and "--seeds must be an integer >= 1" in bad.output
    assert len(bad.output.strip().splitlines()) == 1
    helps = runner.invoke(app, ["bench", "run", "--help"], env={"COLUMNS": "200"}).output
    assert "--seeds" in helps and "0..N-1" in helps
