"""The grouped bar chart: a panel per task, a bar per present cell, error bars from seeds, n/a for gaps."""

from __future__ import annotations

import pytest
from matplotlib.colors import to_rgb

from saip_bench.report import build_report_table, plot, plot_bars
from saip_bench.report.bars import bars_figure
from saip_bench.report.figures import row_style


def _bars(ax):
    return [
        patch for container in ax.containers if hasattr(container, "patches") for patch in container.patches
    ]


def test_one_panel_per_task_and_one_bar_per_present_cell(seeded_records, seeded_means):
    fig = bars_figure(build_report_table(seeded_records))
    panels = {ax.get_title(): ax for ax in fig.axes}
    assert list(panels) == ["Re-ID", "Attributes", "Parsing"]
    reid, attributes, parsing = panels.values()
    assert [t.get_text() for t in reid.get_xticklabels()] == ["Market-1501", "MSMT17"]
    assert reid.get_ylabel() == "mAP" and parsing.get_ylabel() == "mIoU"
    assert len(_bars(reid)) == len(_bars(attributes)) == 2 * 3  # 2 datasets x 3 backbones
    assert len(_bars(parsing)) == 2  # random_tiny has no LIP result ...
    assert [t.get_text() for t in parsing.texts] == ["n/a"]  # ... and its slot says so
    # Heights are the means over seeds, in row order within each group.
    heights = sorted(round(p.get_height(), 6) for p in _bars(reid))
    expected = sorted(seeded_means[b][d] for b in seeded_means for d in ("market1501", "msmt17"))
    assert heights == pytest.approx(expected)
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == ["saip_tiny", "mae_tiny", "random_tiny"]
    assert all(ax.get_ylim()[0] == 0 for ax in fig.axes)  # a bar's length is its value


def test_error_bars_are_one_std_and_only_for_several_seeds(seeded_records, make, numbered):
    fig = bars_figure(build_report_table(seeded_records))
    for ax in fig.axes:
        lines = [c for c in ax.containers if getattr(c, "has_yerr", False)]
        segments = [seg for c in lines for seg in c.lines[2][0].get_segments()]
        assert segments and all(seg[1][1] - seg[0][1] == pytest.approx(1.0) for seg in segments)
    single = bars_figure(build_report_table(numbered([make("a", "market1501", 30.0)])))
    (ax,) = single.axes
    assert len(_bars(ax)) == 1
    assert not [
        seg
        for c in ax.containers
        if getattr(c, "has_yerr", False)
        for seg in c.lines[2][0].get_segments()
        if len(seg)
    ]


def test_a_real_zero_is_a_bar_and_values_can_be_written(make, numbered):
    table = build_report_table(numbered([make("a", "market1501", 0.0), make("b", "market1501", 12.5)]))
    (ax,) = bars_figure(table, values=True).axes
    assert sorted(p.get_height() for p in _bars(ax)) == [0.0, 12.5]
    assert not [t for t in ax.texts if t.get_text() == "n/a"]
    assert {t.get_text() for t in ax.texts} == {"0.0", "12.5"}
    # The zero-height bar is marked by a line on the baseline in its row's colour.
    flat = [c for c in ax.collections if [len(seg) for seg in c.get_segments()] == [2]]  # not the error bars
    (baseline,) = [c for c in flat if all(y == 0 for _, y in c.get_segments()[0])]
    assert tuple(baseline.get_color()[0][:3]) == pytest.approx(to_rgb(row_style(0).color))


def test_neighbouring_missing_bars_share_one_na(make, numbered):
    records = numbered(
        [make(name, "market1501", 10.0) for name in ("a", "b", "c")] + [make("a", "msmt17", 5.0)]
    )
    (ax,) = bars_figure(build_report_table(records)).axes
    assert [t.get_text() for t in ax.texts] == ["n/a"]  # b and c have no MSMT17 result: one label over both
    assert ax.texts[0].get_position()[0] == pytest.approx(1 - 0.4 + 0.8 / 3 * 2)


def test_panels_wrap_into_rows_that_fit_the_width(make, numbered):
    from saip_bench.datasets import DATASETS

    records = numbered([make("a", name, 10.0 + i) for i, name in enumerate(DATASETS.names())])
    table = build_report_table(records)
    narrow = bars_figure(table)
    rows = sorted({round(ax.get_position().y0, 3) for ax in narrow.axes})
    assert len(narrow.axes) == 7 and len(rows) == 3  # 12 datasets, 4 per row at one column's width
    wide = bars_figure(table, width=7.0)
    assert len({round(ax.get_position().y0, 3) for ax in wide.axes}) == 2


def test_bar_chart_png_and_pdf(seeded_records, tmp_path):
    table = build_report_table(seeded_records)
    assert plot_bars(table, tmp_path / "b.png").read_bytes()[:4] == b"\x89PNG"
    (pdf,) = plot(table, tmp_path / "b.pdf", "bars")
    assert pdf.read_bytes()[:4] == b"%PDF"


@pytest.mark.parametrize("kind", ["radar", "bars", "scales"])
def test_every_chart_is_legible_at_column_width(seeded_records, kind):
    from matplotlib.text import Text

    from saip_bench.report import build_scale_table
    from saip_bench.report.plots import figure

    table = build_scale_table(seeded_records) if kind == "scales" else build_report_table(seeded_records)
    fig = figure(table, kind)
    assert fig.get_figwidth() == pytest.approx(3.4)
    fig.canvas.draw()
    texts = [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]
    assert len(texts) > 10
    assert min(t.get_fontsize() for t in texts) >= 7
