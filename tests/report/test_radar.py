"""The radar: only axes with data, per-axis round ticks, gaps for missing results, a legend entry per row."""

from __future__ import annotations

import logging
import math

import pytest
from PIL import Image

from saip_bench.errors import SaipError
from saip_bench.report import build_report_table, plot, plot_radar
from saip_bench.report.plots import chart_kind, figure
from saip_bench.report.radar import HOLE, nice_ticks, radar_axes, radar_figure

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _row_lines(fig):
    """The rows' lines of a radar figure by legend label (the web's rings have no label)."""
    (ax,) = fig.axes
    return {line.get_label(): line for line in ax.get_lines() if not line.get_label().startswith("_")}


def test_radar_png_and_pdf_are_written_at_print_size(seeded_records, tmp_path):
    png, pdf = plot(build_report_table(seeded_records), [tmp_path / "r.png", tmp_path / "r.pdf"], "radar")
    assert png.read_bytes()[:8] == PNG_MAGIC
    assert pdf.read_bytes()[:5] == b"%PDF-"
    with Image.open(png) as image:
        # One paper column (3.4 in) at 300 dpi, cropped tight: about 1000 px wide.
        assert 850 < image.width < 1150 and image.height > 850
        assert len(image.convert("RGB").getcolors(1 << 20)) > 50  # lines, markers and text: not blank
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.pdf", "r.png"]  # no temporary left behind


def test_radar_has_exactly_the_axes_with_data(sample_records):
    # Twelve columns, three with results (Market-1501, PA-100K, LIP): three spokes, in the paper's order.
    table = build_report_table(sample_records, all_datasets=True)
    assert len(table.columns) == 12
    fig = radar_figure(table)
    (ax,) = fig.axes
    assert [t.get_text() for t in ax.get_xticklabels()] == ["Market-1501\nmAP", "PA-100K\nmA", "LIP\nmIoU"]
    assert len(ax.get_xticks()) == 3
    assert [a.key for a in radar_axes(table)] == ["market1501", "pa100k", "lip"]


def test_missing_results_are_gaps_and_a_real_zero_is_drawn(sample_records, make, numbered):
    records = [*sample_records, make("zero_tiny", "market1501", 0.0), make("zero_tiny", "lip", 20.0)]
    table = build_report_table(numbered(records))
    axes = radar_axes(table)
    lines = _row_lines(radar_figure(table))
    # random_tiny has Market-1501 and PA-100K but no LIP: NaN at LIP (index 2), finite elsewhere.
    radii = list(lines["random_tiny"].get_ydata())
    assert math.isnan(radii[2]) and not any(math.isnan(r) for r in radii[:2])
    assert radii[-1] == radii[0]  # the polygon closes on its first spoke
    # zero_tiny's 0.0 on Market-1501 is a point at 0 on that axis (the inner ring), not a gap.
    zero = list(lines["zero_tiny"].get_ydata())
    assert zero[0] == pytest.approx(axes[0].radius(0.0)) == pytest.approx(HOLE)
    assert math.isnan(zero[1])  # no PA-100K result


def test_one_legend_entry_per_row_and_distinct_styles(sample_records, make, numbered):
    records = numbered([*sample_records, make("ckpt_042", "market1501", 20.0, pretrain_method="dino")])
    fig = radar_figure(build_report_table(records))
    (legend,) = fig.legends
    # The method is shown only where the name does not say it already ("saip_tiny / saip" once was the label).
    assert [t.get_text() for t in legend.get_texts()] == [
        "saip_tiny",
        "random_tiny",
        "mae_tiny",
        "ckpt_042 (dino)",
    ]
    lines = _row_lines(fig).values()
    styles = {(line.get_color(), line.get_marker(), line.get_linestyle()) for line in lines}
    assert len(styles) == len(lines) == 4
    assert (
        len({line.get_marker() for line in lines}) == 4 and len({line.get_linestyle() for line in lines}) == 4
    )


def test_axes_have_their_own_round_ticks_and_lower_is_better_runs_inward(make, numbered):
    records = numbered(
        [
            make("a", "market1501", 12.3),
            make("b", "market1501", 81.2),
            make("a", "pa100k", 79.1),
            make("b", "pa100k", 80.4),
            make("a", "lip", 0.41),
            make("b", "lip", 0.47),
            make("a", "crowdhuman", 48.0, primary_metric="MR-2", metrics={"MR-2": 48.0}),
            make("b", "crowdhuman", 55.0, primary_metric="MR-2", metrics={"MR-2": 55.0}),
        ]
    )
    table = build_report_table(records)
    axes = {a.key: a for a in radar_axes(table)}
    assert axes["market1501"].rings == (0, 25, 50, 75, 100)
    assert axes["pa100k"].rings == (75, 77.5, 80, 82.5, 85)  # 1.3 points apart: a 10 % window around them
    assert axes["lip"].rings[0] <= 0.41 and axes["lip"].rings[-1] >= 0.47 and axes["lip"].rings[-1] < 1
    mr = axes["crowdhuman"]
    assert mr.lower_is_better and mr.rings[0] > mr.rings[-1]
    assert mr.radius(48.0) > mr.radius(55.0)  # the smaller miss rate is further out
    assert "MR-2 \u2193" in mr.label
    # The tick values are written on the figure, next to their spokes.
    (ax,) = radar_figure(table).axes
    shown = {t.get_text() for t in ax.texts}
    assert {"0", "50", "100"} <= shown


@pytest.mark.parametrize(
    ("values", "ticks"),
    [
        ([12.3, 81.2], [0, 25, 50, 75, 100]),
        ([83.0, 84.1], [77.5, 80, 82.5, 85, 87.5]),  # close values: a window of 10 % of their size
        ([0.0, 0.0], [0, 0.25, 0.5, 0.75, 1]),
        ([-3.0, 4.0], [-4, -2, 0, 2, 4]),
    ],
)
def test_nice_ticks(values, ticks):
    assert nice_ticks(values) == pytest.approx(ticks)


def test_nice_ticks_cover_their_values():
    for low, high in [(0.123, 0.9), (41.257, 41.257), (55.0, 72.004), (1e-4, 3e-4), (250.0, 1234.5)]:
        ticks = nice_ticks([low, high])
        assert ticks[0] <= low and ticks[-1] >= high and len(ticks) == 5
        steps = {round(b - a, 9) for a, b in zip(ticks, ticks[1:], strict=False)}
        assert len(steps) == 1


def test_fewer_than_three_axes_fall_back_to_bars(make, numbered, tmp_path, caplog):
    table = build_report_table(numbered([make("a", "market1501", 30.0), make("a", "pa100k", 60.0)]))
    assert chart_kind(table, "radar") == chart_kind(table) == "bars"
    with caplog.at_level(logging.WARNING, logger="saip_bench.report"):
        fig = figure(table, "radar")
    assert fig.axes[0].name == "rectilinear" and fig.axes[0].get_title() == "Re-ID"
    assert caplog.text.count("a bar chart instead of a radar: 2 dataset(s) with results") == 1
    with pytest.raises(SaipError, match="needs 3 datasets"):
        radar_figure(table)
    out = plot_radar(table, tmp_path / "r.png")
    assert out.read_bytes()[:8] == PNG_MAGIC


def test_two_protocols_of_one_dataset_are_two_axes(make, numbered):
    records = numbered(
        [
            make("a", "market1501", 1.0, protocol="frozen"),
            make("a", "market1501", 2.0, protocol="finetune"),
            make("a", "pa100k", 3.0),
        ]
    )
    fig = radar_figure(build_report_table(records))
    labels = [t.get_text().split("\n")[0] for t in fig.axes[0].get_xticklabels()]
    assert labels == ["Market-1501 (finetune)", "Market-1501 (frozen)", "PA-100K"]


def test_bad_paths_are_refused_before_drawing(sample_records, tmp_path):
    table = build_report_table(sample_records)
    with pytest.raises(SaipError, match=r"\.png, \.pdf or \.svg"):
        plot_radar(table, tmp_path / "r.jpg")
    with pytest.raises(SaipError, match="does not exist"):
        plot(table, [tmp_path / "ok.png", tmp_path / "missing" / "r.pdf"])
    with pytest.raises(SaipError, match="unknown chart 'pie'"):
        plot(table, tmp_path / "r.png", "pie")
    with pytest.raises(SaipError, match="--scales"):
        plot(table, tmp_path / "r.png", "scales")
    assert list(tmp_path.iterdir()) == []
