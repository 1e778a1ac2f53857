"""The scale-robustness table: only probed backbone x dataset pairs, scales ascending, best per row."""

from __future__ import annotations

from saip_bench.report import build_scale_table


def test_scale_table_rows_and_columns(sample_records):
    table = build_scale_table(sample_records)
    assert [c.scale for c in table.columns] == [0.5, 1.0, 1.5]
    (row,) = table.rows  # only saip_tiny on market1501 was probed at other scales
    assert row.labels == ("saip_tiny", "saip", "Market-1501", "frozen", "mAP")
    assert [row.value(c) for c in table.columns] == [30.0, 41.257, 38.0]
    assert row.best == {"x1"}


def test_unprobed_store_gives_an_empty_table(make, numbered):
    assert build_scale_table(numbered([make("a", "market1501", 1.0)])).is_empty


def test_missing_scale_is_a_gap_and_rows_follow_dataset_order(make, numbered):
    records = numbered(
        [
            make("a", "pa100k", 60.0, scale=0.5),
            make("a", "market1501", 20.0, scale=0.75),
            make("b", "market1501", 25.0, scale=0.5),
        ]
    )
    table = build_scale_table(records)
    assert [c.key for c in table.columns] == ["x0.5", "x0.75"]
    assert [(r.labels[0], r.labels[2]) for r in table.rows] == [
        ("a", "Market-1501"),
        ("b", "Market-1501"),
        ("a", "PA-100K"),
    ]
    assert table.rows[0].value("x0.5") is None
