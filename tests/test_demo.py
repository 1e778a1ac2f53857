"""``saip demo`` end to end on tiny settings: every stage runs, the report has every backbone x dataset, and a
rerun reuses the workspace instead of repeating work.

One real demo, started as a user starts it (the ``saip`` console script in a fresh process, one thread, no
``SAIP_WORKSPACE``), serves every check here: its printed stages and table, then its workspace (exports,
records, the report table) and an in-process rerun on that workspace. CI's own ``saip demo`` run covers every
dataset; two datasets of different tasks and protocols keep this one short.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from saip_bench.demo import DEMO_METHODS, demo_protocol, run_demo
from saip_bench.report.table import build_report_table
from saip_bench.results import open_workspace_store
from tests.cli.test_fresh_subprocess import saip

#: A probe dataset of two tasks: re-ID (frozen retrieval) and attributes (a linear head).
DATASETS = ("market1501", "pa100k")
STEPS = 2


def test_demo_prefers_the_fast_probe_protocols() -> None:
    assert demo_protocol(("finetune", "frozen")) == "frozen"
    assert demo_protocol(("finetune", "linear")) == "linear"
    assert demo_protocol(("finetune",)) == "finetune"


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """``saip demo --workspace ws --dataset market1501 --dataset pa100k --steps 2`` in a fresh process:
    (the workspace, what it printed)."""
    cwd = tmp_path_factory.mktemp("demo")
    args = ["demo", "--workspace", "ws", "--steps", str(STEPS), "--device", "cpu"]
    for name in DATASETS:
        args += ["--dataset", name]
    result = saip(*args, cwd=cwd, timeout=600)
    assert result.returncode == 0, f"saip demo exited {result.returncode}:\n{result.stdout}"
    return cwd / "ws", result.stdout


@pytest.mark.slow
def test_demo_from_a_shell_runs_every_stage(demo_run: tuple[Path, str]) -> None:
    ws, out = demo_run
    assert "Traceback" not in out and "demo finished" in out
    for stage in ("data:", "pretrain:", "evaluate:"):
        assert stage in out, stage
    assert "market1501 (frozen)" in out and "pa100k (linear)" in out
    assert (ws / "results.sqlite").is_file()
    for method in DEMO_METHODS:
        assert (ws / "runs" / "pretrain" / method / "backbone.safetensors").is_file(), method
    assert not (ws / "data" / "coco").exists()  # only the datasets asked for are written


@pytest.mark.slow
def test_demo_reports_every_backbone_on_every_dataset(demo_run: tuple[Path, str]) -> None:
    ws, _ = demo_run
    records = open_workspace_store(ws).query()
    table = build_report_table(records)
    # One row per backbone (the untrained reference and one export per method, named after its run folder) ...
    assert len(table.rows) == 1 + len(DEMO_METHODS)
    for method in DEMO_METHODS:
        assert any(method in " ".join(row.labels) for row in table.rows), method
    # ... and one column per dataset that has an adapter, every cell filled.
    assert len(table.columns) == len(DATASETS)
    for row in table.rows:
        assert all(row.value(col) is not None for col in table.columns)
    assert len(records) == len(table.rows) * len(DATASETS)


@pytest.mark.slow
def test_demo_rerun_reuses_the_workspace(demo_run: tuple[Path, str]) -> None:
    ws, _ = demo_run
    before = build_report_table(open_workspace_store(ws).query())
    stages: list[tuple[str, str]] = []
    rerun = run_demo(ws, pretrain_steps=STEPS, datasets=DATASETS, on_stage=lambda s, d: stages.append((s, d)))
    # Nothing pretrained again (the per-method stage is only entered for a missing export) ...
    assert [detail for name, detail in stages if name == "pretrain"] == [", ".join(DEMO_METHODS)]
    # ... and every evaluation skipped, not recomputed: the same records and the same table.
    assert len(open_workspace_store(ws).query()) == len(before.rows) * len(DATASETS)
    assert rerun.table is not None
    assert [r.values for r in rerun.table.rows] == [r.values for r in before.rows]
