"""The overview radar chart: one polygon per backbone over the datasets that have results.

Axes: one per table column with a value in at least one row, in the table's (the paper's) order; a dataset
nobody evaluated is left out rather than drawn as an empty spoke that collapses every polygon.

Normalisation: the datasets' metrics differ by tens of points, so every axis has its own range, written on
it as tick values at the web's rings. The range is :data:`RINGS` equal steps of a round size (1, 2, 2.5 or 5
times a power of ten) from a round value at or below the axis's lowest value to one at or above its highest;
the lowest tick sits on the inner ring (:data:`HOLE` of the radius), not at the centre, so the spokes'
values stay apart. On a lower-is-better axis (MR^-2, marked with an arrow) the ticks run the other way:
outward is better on every axis.

Missing results are gaps: a row's line is broken (NaN) at an axis it has no value for, instead of dropping to
the centre, and a real 0.0 is drawn at 0 on its axis. With fewer than three axes a radar says nothing a bar
chart would not, so :func:`plot_radar` draws the bar chart instead and logs why.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from saip_bench.errors import SaipError
from saip_bench.report.figures import (
    COLUMN_WIDTH_IN,
    DEFAULT_DPI,
    add_legend,
    legend_columns,
    new_figure,
    paper_style,
    row_label,
    row_style,
)
from saip_bench.report.table import ReportTable, is_lower_better

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: Steps between the inner and the outer ring of every axis.
RINGS = 4
#: Radius of the inner ring (an axis's lowest tick), as a fraction of the outer one.
HOLE = 0.35
#: The fewest axes a radar is drawn with.
MIN_AXES = 3
_NICE = (1.0, 2.0, 2.5, 5.0)
_LOWER_MARK = "\u2193"  # a downward arrow: lower is better


@dataclass(frozen=True)
class RadarAxis:
    """One spoke: a table column, its label at the rim, and the values at the rings from inner to outer."""

    key: str
    label: str
    rings: tuple[float, ...]

    @property
    def lower_is_better(self) -> bool:
        return self.rings[0] > self.rings[-1]

    def radius(self, value: float | None) -> float:
        """Where ``value`` sits on this spoke (HOLE at the inner ring, 1 at the outer); NaN when missing."""
        if value is None:
            return math.nan
        inner, outer = self.rings[0], self.rings[-1]
        return HOLE + (1 - HOLE) * (value - inner) / (outer - inner)


def nice_ticks(values: Sequence[float], steps: int = RINGS) -> list[float]:
    """``steps + 1`` evenly spaced round ticks covering ``values`` (ascending).

    The step is the smallest of 1, 2, 2.5 or 5 times a power of ten whose range, from the multiple of the
    step at or below the lowest value, reaches the highest. Values closer together than 10 % of their
    magnitude (one row, or ties) get a window of that width centred on them (not below 0 for values that are
    not), so a difference of a tenth of a point does not fill a spoke.
    """
    low, high = min(values), max(values)
    span = max(high - low, 0.1 * max(abs(low), abs(high)), 1e-9 if high else 1.0)
    if span > high - low:  # a widened window is centred on the values, below 0 only for negative ones
        low = (low + high - span) / 2 if low < 0 else max(0.0, (low + high - span) / 2)
    exponent = math.floor(math.log10(span / steps))
    for power in (exponent, exponent + 1, exponent + 2):
        for mantissa in _NICE:
            step = mantissa * 10.0**power
            if step * steps < span * (1 - 1e-9):
                continue
            start = math.floor(low / step + 1e-9) * step
            if start + steps * step >= high - 1e-9 * step:
                return [_clean(start + i * step, step) for i in range(steps + 1)]
    raise AssertionError(f"no round ticks for {values}")  # unreachable: the last step spans 100x the range


def radar_axes(table: ReportTable) -> list[RadarAxis]:
    """The spokes of ``table``'s radar: the columns with at least one value, in table order."""
    axes = []
    for column in table.columns:
        values = [v for row in table.rows if (v := row.value(column)) is not None]
        if not values:
            continue
        ticks = nice_ticks(values)
        lower = is_lower_better(column.metric)
        metric = f"{column.metric} {_LOWER_MARK}" if lower else column.metric
        axes.append(
            RadarAxis(
                key=column.key,
                label=f"{column.title}\n{metric}" if metric else column.title,
                rings=tuple(reversed(ticks)) if lower else tuple(ticks),
            )
        )
    return axes


def radar_figure(table: ReportTable, *, title: str | None = None, width: float = COLUMN_WIDTH_IN) -> Figure:
    """The radar chart of ``table`` as a matplotlib figure (see the module docstring for how it reads).

    Args:
        table: A backbone x dataset table (:func:`saip_bench.report.table.build_report_table`).
        title: Title above the chart; none by default (a paper's caption says it).
        width: Figure width in inches; the height follows from the legend.

    Raises:
        SaipError: if the table has no rows or fewer than :data:`MIN_AXES` columns with values.
    """
    if table.is_empty:
        raise SaipError("nothing to plot: the report has no rows")
    axes = radar_axes(table)
    if len(axes) < MIN_AXES:
        raise SaipError(f"a radar needs {MIN_AXES} datasets with results, the report has {len(axes)}")
    n = len(axes)
    angles = [2 * math.pi * i / n for i in range(n)]
    closed = [*angles, angles[0]]
    labels = [row_label(row) for row in table.rows]
    legend_rows = math.ceil(len(labels) / legend_columns(labels, width, handlelength=2.6))

    with paper_style():
        fig = new_figure(width, width * 0.92 + 0.16 * legend_rows + (0.2 if title else 0))
        ax = fig.add_subplot(projection="polar")
        # Read clockwise from the top, like the SAIP paper's figure.
        ax.set_theta_offset(math.pi / 2)
        ax.set_theta_direction(-1)
        ax.set_ylim(0, 1)
        ax.set_yticks([])
        ax.spines["polar"].set_visible(False)
        ax.set_xticks(angles)
        ax.set_xticklabels([a.label for a in axes])
        ax.tick_params(axis="x", pad=0)
        ax.xaxis.grid(True, color="0.82", linewidth=0.5)
        for i in range(RINGS + 1):
            radius = HOLE + (1 - HOLE) * i / RINGS
            ax.plot(closed, [radius] * (n + 1), color="0.82", linewidth=0.5, zorder=1)
        for label, angle in zip(ax.get_xticklabels(), angles, strict=True):
            label.set_horizontalalignment(_side(math.sin(angle), "left", "right"))
            label.set_verticalalignment(_side(math.cos(angle), "bottom", "top"))
        # Every other ring's value on few spokes, the inner and outer ones' on many: legible at 7 pt.
        labelled = {0, RINGS // 2, RINGS} if n <= 6 else {0, RINGS}
        for axis, angle in zip(axes, angles, strict=True):
            # Tick values sit just clockwise of their spoke, so the rows' markers on it never hide them.
            across = -angle  # on screen the spoke points at pi/2 - angle; this is 90 degrees clockwise of it
            dx, dy = math.cos(across), math.sin(across)
            for i, value in enumerate(axis.rings):
                if i not in labelled:
                    continue
                ax.annotate(
                    _tick_text(value, [axis.rings[j] for j in sorted(labelled)]),
                    xy=(angle, HOLE + (1 - HOLE) * i / RINGS),
                    xytext=(2.5 * dx, 2.5 * dy),
                    textcoords="offset points",
                    fontsize=7,
                    color="0.35",
                    ha=_side(dx, "left", "right"),
                    va=_side(dy, "bottom", "top"),
                    zorder=2,
                )
        lines = []
        for index, (row, label) in enumerate(zip(table.rows, labels, strict=True)):
            radii = [axis.radius(row.value(axis.key)) for axis in axes]
            (line,) = ax.plot(
                closed,
                [*radii, radii[0]],
                **row_style(index).line(),
                linewidth=1.2,
                markersize=4,
                label=label,
                zorder=3 + index,
                clip_on=False,
            )
            lines.append(line)
        if title:
            ax.set_title(title)
        add_legend(fig, lines, labels, width, handlelength=2.6)
    return fig


def plot_radar(
    table: ReportTable,
    path: str | Path,
    *,
    title: str | None = None,
    width: float = COLUMN_WIDTH_IN,
    dpi: int = DEFAULT_DPI,
) -> Path:
    """Draw the radar chart of ``table`` and write it atomically to ``path`` (.png, .pdf or .svg).

    With fewer than :data:`MIN_AXES` datasets that have results, the bar chart
    (:func:`saip_bench.report.bars.plot_bars`) is written instead, with a logged warning.

    Args:
        table: A backbone x dataset table from :func:`saip_bench.report.table.build_report_table`.
        path: Output image file; its folder must exist.
        title: Figure title; none by default.
        width: Figure width in inches (default: one paper column).
        dpi: Resolution of raster output.

    Returns:
        The written path.
    """
    from saip_bench.report.plots import plot

    return plot(table, path, "radar", title=title, width=width, dpi=dpi)[0]


def _side(direction: float, positive: str, negative: str) -> str:
    # Text alignment that keeps a label on the ``direction`` side of its anchor; "center" when nearly level.
    return positive if direction > 0.25 else negative if direction < -0.25 else "center"


def _clean(value: float, step: float) -> float:
    return round(value, max(0, 1 - math.floor(math.log10(step))) + 1)


def _tick_text(value: float, shown: Sequence[float]) -> str:
    # As many decimals as the values shown on the spoke need (2.5 -> 1, 80 and 90 -> 0): one format per spoke.
    decimals = 0
    while decimals < 6 and any(abs(v * 10**decimals - round(v * 10**decimals)) > 1e-6 for v in shown):
        decimals += 1
    return f"{value:.{decimals}f}"
