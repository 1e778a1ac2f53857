"""One entry point for the report's charts: pick the kind, draw it once, write it in every format asked for.

``saip report --plot FILE`` calls :func:`plot`: a backbone x dataset table gives the radar (or the grouped bar
chart), a scale table (``--scales``) the metric-vs-scale plot.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from saip_bench.errors import SaipError
from saip_bench.report.figures import COLUMN_WIDTH_IN, DEFAULT_DPI, plot_format, save_figure
from saip_bench.report.scales import ROBUSTNESS
from saip_bench.report.table import ReportTable

if TYPE_CHECKING:
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)

#: The chart kinds :func:`plot` draws; ``"auto"`` is the radar for a dataset table, the scale plot for a
#: scale table.
PLOT_KINDS: tuple[str, ...] = ("auto", "radar", "bars", "scales")


def is_scale_table(table: ReportTable) -> bool:
    """Whether ``table`` is a scale table (:func:`saip_bench.report.scales.build_scale_table`): scale columns,
    and its robustness column."""
    columns = [c for c in table.columns if c.key != ROBUSTNESS.key]
    return bool(columns) and all(c.scale is not None and c.dataset is None for c in columns)


def chart_kind(table: ReportTable, kind: str = "auto") -> str:
    """The chart :func:`plot` draws for ``kind``: ``"radar"``, ``"bars"`` or ``"scales"``.

    ``"auto"`` means scales for a scale table, else the radar; a radar of fewer than three datasets with
    results is the bar chart (:func:`figure` logs it when it draws one). Call it before writing anything
    to fail early on a chart that does not fit the table.

    Raises:
        SaipError: for an unknown kind, or one that does not fit the table.
    """
    from saip_bench.report.radar import MIN_AXES, radar_axes

    if kind not in PLOT_KINDS:
        raise SaipError(f"unknown chart {kind!r}; valid charts: {', '.join(PLOT_KINDS)}")
    scale_table = is_scale_table(table)
    if kind == "auto":
        kind = "scales" if scale_table else "radar"
    if scale_table != (kind == "scales"):
        raise SaipError(
            "the scale plot needs the scale table (--scales)"
            if kind == "scales"
            else f"the {kind} chart shows backbones x datasets; with --scales only the scale plot is drawn"
        )
    if kind == "radar" and len(radar_axes(table)) < MIN_AXES:
        kind = "bars"
    return kind


def figure(
    table: ReportTable, kind: str = "auto", *, title: str | None = None, width: float = COLUMN_WIDTH_IN
) -> Figure:
    """The chart of ``table`` (:func:`chart_kind` of ``kind``) as a matplotlib figure."""
    from saip_bench.report.bars import bars_figure
    from saip_bench.report.radar import MIN_AXES, radar_axes, radar_figure
    from saip_bench.report.scales import scales_figure

    if table.is_empty:
        raise SaipError("nothing to plot: the report has no rows")
    drawn = chart_kind(table, kind)
    if drawn == "bars" and kind in ("auto", "radar"):
        log.warning(
            "a bar chart instead of a radar: %d dataset(s) with results, a radar needs %d",
            len(radar_axes(table)),
            MIN_AXES,
        )
    draw = {"radar": radar_figure, "bars": bars_figure, "scales": scales_figure}[drawn]
    return draw(table, title=title, width=width)


def plot(
    table: ReportTable,
    paths: str | Path | Sequence[str | Path],
    kind: str = "auto",
    *,
    title: str | None = None,
    width: float = COLUMN_WIDTH_IN,
    dpi: int = DEFAULT_DPI,
) -> list[Path]:
    """Draw the chart of ``table`` once and write it to each of ``paths`` (format by suffix), atomically.

    Args:
        table: A backbone x dataset table, or a scale table.
        paths: One output file or several (``fig.png`` and ``fig.pdf``); .png, .pdf or .svg, in existing
            folders. All are checked before anything is drawn.
        kind: One of :data:`PLOT_KINDS`.
        title: Title above the chart; none by default (a paper's caption says it).
        width: Figure width in inches (default: one paper column; 7.0 for the full text width).
        dpi: Resolution of PNG output.

    Returns:
        The written paths.

    Raises:
        SaipError: for a bad path, kind or table (nothing is written then).
    """
    targets = [Path(paths)] if isinstance(paths, str | Path) else [Path(p) for p in paths]
    for path in targets:
        plot_format(path)
    fig = figure(table, kind, title=title, width=width)
    return [save_figure(fig, path, dpi) for path in targets]
