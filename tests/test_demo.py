"""``saip demo`` end to end on tiny settings: every stage runs, the report has every backbone x dataset, and a
rerun reuses the workspace instead of repeating work."""

from __future__ import annotations

from pathlib import Path

import pytest

from saip_bench.demo import demo_protocol, run_demo
from saip_bench.results import open_workspace_store


def test_demo_prefers_the_fast_probe_protocols() -> None:
    assert demo_protocol(("finetune", "frozen")) == "frozen"
    assert demo_protocol(("finetune", "linear")) == "linear"
    assert demo_protocol(("finetune",)) == "finetune"


@pytest.mark.slow
def test_demo_runs_every_stage_and_is_idempotent(tmp_path: Path) -> None:
    stages: list[tuple[str, str]] = []
    # Two datasets keep the test short; CI's full `saip demo` run covers every dataset.
    datasets = ("market1501", "lip")
    result = run_demo(
        tmp_path,
        pretrain_steps=2,
        methods=("mae",),
        datasets=datasets,
        on_stage=lambda s, d: stages.append((s, d)),
    )

    assert (tmp_path / "runs" / "pretrain" / "mae" / "backbone.safetensors").is_file()
    assert {name for name, _ in stages} >= {"data", "pretrain", "evaluate"}
    table = result.table
    assert table is not None
    # One row per backbone (the untrained reference and the export, named after its run folder) ...
    assert len(table.rows) == 2
    assert any("mae" in " ".join(row.labels) for row in table.rows)
    # ... and one column per dataset that has an adapter, every cell filled.
    assert len(table.columns) == len(datasets)
    for row in table.rows:
        assert all(row.value(col) is not None for col in table.columns)

    records = len(open_workspace_store(tmp_path).query())
    assert records == 2 * len(datasets)
    assert not (tmp_path / "data" / "coco").exists()  # only the datasets asked for are written
    rerun = run_demo(tmp_path, pretrain_steps=2, methods=("mae",), datasets=datasets)
    assert len(open_workspace_store(tmp_path).query()) == records  # skipped, not recomputed
    assert [r.values for r in rerun.table.rows] == [r.values for r in table.rows]
