"""The report table model: paper column order, latest record wins, best per column, protocol split."""

from __future__ import annotations

import math

from saip_bench.datasets import EVAL_DATASETS
from saip_bench.report import build_report_table


def _grid(table):
    return {row.labels[0]: {c.key: row.value(c) for c in table.columns} for row in table.rows}


def test_columns_follow_the_paper_and_latest_record_wins(sample_records):
    table = build_report_table(sample_records)
    assert [c.key for c in table.columns] == ["market1501", "pa100k", "lip"]  # not the insertion order
    assert [c.metric for c in table.columns] == ["mAP", "mA", "mIoU"]
    grid = _grid(table)
    assert grid["saip_tiny"]["market1501"] == 41.257  # the later record, and not a scale probe
    assert grid["random_tiny"]["lip"] is None
    assert [row.labels for row in table.rows][0] == ("saip_tiny", "saip")  # order of first appearance


def test_best_per_column(sample_records):
    table = build_report_table(sample_records)
    best = {row.labels[0]: row.best for row in table.rows}
    assert best["saip_tiny"] == {"market1501"}
    assert best["mae_tiny"] == {"pa100k"}
    assert best["random_tiny"] == set()
    # A column with a single value marks nothing: there is nothing to compare it with.
    assert all("lip" not in b for b in best.values())


def test_ties_and_lower_is_better(make, numbered):
    records = numbered(
        [
            make("a", "market1501", 50.0),
            make("b", "market1501", 50.0),
            make("a", "crowdhuman", 40.0, primary_metric="MR-2"),
            make("b", "crowdhuman", 45.0, primary_metric="MR-2"),
        ]
    )
    table = build_report_table(records)
    best = {row.labels[0]: row.best for row in table.rows}
    assert best == {"a": {"market1501", "crowdhuman"}, "b": {"market1501"}}


def test_several_protocols_split_the_columns(make, numbered):
    records = numbered(
        [
            make("a", "market1501", 50.0, protocol="frozen"),
            make("a", "market1501", 80.0, protocol="finetune"),
            make("a", "pa100k", 60.0, protocol="linear"),
        ]
    )
    table = build_report_table(records)
    assert [c.key for c in table.columns] == ["market1501/finetune", "market1501/frozen", "pa100k"]
    assert table.columns[0].title == "Market-1501 (finetune)"
    assert _grid(table)["a"] == {"market1501/finetune": 80.0, "market1501/frozen": 50.0, "pa100k": 60.0}


def test_protocols_are_named_in_the_notes_when_not_split(sample_records):
    table = build_report_table(sample_records)
    assert any(note.startswith("protocol: frozen") for note in table.notes)


def test_all_datasets_shows_all_twelve(sample_records):
    table = build_report_table(sample_records, all_datasets=True)
    assert [c.dataset for c in table.columns] == list(EVAL_DATASETS)
    assert _grid(table)["saip_tiny"]["msmt17"] is None


def test_same_name_different_weights_are_told_apart(make, numbered):
    records = numbered(
        [
            make("saip_tiny", "market1501", 40.0, backbone_digest="1111111111aa"),
            make("saip_tiny", "market1501", 42.0, backbone_digest="2222222222bb"),
        ]
    )
    labels = [row.labels[0] for row in build_report_table(records).rows]
    assert labels == ["saip_tiny [11111111]", "saip_tiny [22222222]"]


def test_nan_is_a_missing_cell(make, numbered):
    table = build_report_table(numbered([make("a", "market1501", math.nan), make("b", "market1501", 1.0)]))
    assert _grid(table)["a"]["market1501"] is None
    assert table.rows[1].best == set()  # one real value: nothing to compare


def test_no_records_no_rows():
    table = build_report_table([])
    assert table.is_empty and table.columns == []
