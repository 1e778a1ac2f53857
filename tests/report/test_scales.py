"""Scale table and plot: only probed pairs, scales ascending, seeds averaged; ticks, error bars, legend."""

from __future__ import annotations

import math

import pytest

from saip_bench.report import build_scale_table, plot
from saip_bench.report.scales import scales_figure


def test_scale_table_rows_and_columns(sample_records):
    table = build_scale_table(sample_records)
    assert [c.scale for c in table.columns] == [0.5, 1.0, 1.5, None]  # the last: robustness
    (row,) = table.rows  # only saip_tiny on market1501 was probed at other scales
    assert row.labels == ("saip_tiny", "saip", "Market-1501", "frozen", "mAP", "no training")
    assert [row.value(c) for c in table.columns] == pytest.approx(
        [30.0, 41.257, 38.0, 100 * (30 + 38) / 2 / 41.257]
    )
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
    assert [c.key for c in table.columns] == ["x0.5", "x0.75", "robustness"]  # no x1: no robustness
    assert [(r.labels[0], r.labels[2]) for r in table.rows] == [
        ("a", "Market-1501"),
        ("b", "Market-1501"),
        ("a", "PA-100K"),
    ]
    assert table.rows[0].value("x0.5") is None


def test_seeds_are_averaged_with_their_spread(seeded_records, seeded_means):
    table = build_scale_table(seeded_records)
    rows = {(r.labels[0], r.labels[2]): r for r in table.rows}
    assert len(rows) == 6  # 3 backbones x Market-1501, PA-100K; the other datasets were not probed
    row = rows[("mae_tiny", "PA-100K")]
    mean = seeded_means["mae_tiny"]["pa100k"]
    assert [row.value(c) for c in table.columns[:3]] == pytest.approx([mean - 10, mean, mean - 10])
    assert row.spread["x0.5"] == pytest.approx((0.5, 3)) and row.spread["x1.5"] == (0.5, 3)
    assert row.spread["x1"] == pytest.approx((0.5, 3))
    latest = build_scale_table(seeded_records, seeds="latest")
    assert latest.rows[0].spread["x1"] == (0.0, 1)


def test_scale_plot_ticks_error_bars_panels_and_legend(seeded_records):
    table = build_scale_table(seeded_records)
    fig = scales_figure(table)
    assert [ax.get_title() for ax in fig.axes] == ["Market-1501", "PA-100K"]  # one panel per dataset
    fig.canvas.draw()
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == ["saip_tiny", "mae_tiny", "random_tiny"]
    box = legend.get_window_extent()
    for ax in fig.axes:
        assert list(ax.get_xticks()) == [0.5, 1.0, 1.5]  # the evaluated scales, nothing else
        assert [t.get_text() for t in ax.get_xticklabels()] == ["0.5", "1", "1.5"]
        assert not box.overlaps(ax.get_window_extent())  # the legend is outside every panel
        bars = [c for c in ax.containers if c.has_yerr]
        assert len(bars) == 3  # one line with error bars per backbone
        for container in bars:
            (segments,) = [lc.get_segments() for lc in container.lines[2]]
            assert len(segments) == 3
            # Each bar spans one standard deviation (0.5) either side of its mean.
            assert all(seg[1][1] - seg[0][1] == pytest.approx(1.0) for seg in segments)


def test_single_seed_cells_draw_no_error_bar(sample_records):
    fig = scales_figure(build_scale_table(sample_records))
    ((container,),) = [[c for c in ax.containers if c.has_yerr] for ax in fig.axes]
    segments = container.lines[2][0].get_segments()
    assert len(segments) == 3  # the three scales, each without a drawable bar
    assert not any(len(seg) and all(math.isfinite(y) for _, y in seg) for seg in segments)


def test_several_protocols_are_several_panels(make, numbered):
    records = numbered(
        [
            make("a", "market1501", 20.0, scale=0.5),
            make("a", "market1501", 30.0, scale=0.5, protocol="linear"),
            make("a", "pa100k", 60.0, scale=0.5),
        ]
    )
    fig = scales_figure(build_scale_table(records))
    assert [ax.get_title() for ax in fig.axes] == [
        "Market-1501 (linear)",
        "Market-1501 (frozen)",
        "PA-100K (frozen)",
    ]


def test_scale_plot_png_and_pdf(seeded_records, tmp_path):
    written = plot(build_scale_table(seeded_records), [tmp_path / "s.png", tmp_path / "s.pdf"])
    assert [p.read_bytes()[:4] for p in written] == [b"\x89PNG", b"%PDF"]
