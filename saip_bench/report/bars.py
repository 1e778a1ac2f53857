"""Grouped bar charts: a panel per task, its datasets as groups, a bar per backbone with its seeds' spread.

The picture for the common case a radar gets wrong: a few datasets, or metrics whose ranges say more side by
side than around a circle. Each panel has its own y axis (the tasks' metrics differ), starting at 0 as a bar's
length must; error bars are one standard deviation over seeds (``Row.spread``), drawn only for cells of two or
more seeds. A missing result is marked "n/a" at the foot of its slot, so it never reads as a real 0.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

from saip_bench.datasets import DATASETS
from saip_bench.errors import SaipError
from saip_bench.report.figures import (
    COLUMN_WIDTH_IN,
    DEFAULT_DPI,
    add_legend,
    new_figure,
    paper_style,
    plot_format,
    row_label,
    row_style,
    save_figure,
    text_width,
)
from saip_bench.report.table import Column, ReportTable, is_lower_better

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

#: Panel titles by task (short: a one-dataset panel is a fraction of a paper column wide); else the name.
TASK_TITLES: dict[str, str] = {
    "reid": "Re-ID",
    "text_retrieval": "Text re-ID",
    "attribute": "Attributes",
    "pose": "Pose",
    "parsing": "Parsing",
    "detection": "Detection",
    "fashion": "Fashion",
}
#: Dataset groups per panel row at one paper column's width (more at larger widths).
GROUPS_PER_COLUMN_WIDTH = 4
_LOWER_MARK = "\u2193"


def task_panels(table: ReportTable) -> dict[str, list[Column]]:
    """The columns with at least one value, grouped by their dataset's task, in table order."""
    panels: dict[str, list[Column]] = {}
    for column in table.columns:
        if any(row.value(column) is not None for row in table.rows):
            task = DATASETS.get(column.dataset).task if column.dataset in DATASETS else "other"
            panels.setdefault(task, []).append(column)
    return panels


def bars_figure(
    table: ReportTable,
    *,
    title: str | None = None,
    width: float = COLUMN_WIDTH_IN,
    values: bool = False,
) -> Figure:
    """The grouped bar chart of ``table`` (backbones x datasets) as a matplotlib figure.

    Args:
        table: A backbone x dataset table (:func:`saip_bench.report.table.build_report_table`).
        title: Title above the panels; none by default.
        width: Figure width in inches; panels wrap to rows of about
            :data:`GROUPS_PER_COLUMN_WIDTH` datasets per paper column of width.
        values: Write each bar's value above it.

    Raises:
        SaipError: if the table has no values.
    """
    panels = task_panels(table)
    if table.is_empty or not panels:
        raise SaipError("nothing to plot: the report has no values")
    capacity = max(GROUPS_PER_COLUMN_WIDTH, round(GROUPS_PER_COLUMN_WIDTH * width / COLUMN_WIDTH_IN))
    layout = _pack(panels, capacity)
    grid_width = max(sum(min(len(panels[t]), capacity) for t in line) for line in layout)
    n_rows = len(table.rows)

    with paper_style():
        fig = new_figure(width, 1.55 * len(layout) + 0.25 + (0.2 if title else 0))
        grid = fig.add_gridspec(len(layout), grid_width)
        for line, tasks in enumerate(layout):
            start = 0
            for task in tasks:
                columns = panels[task]
                span = min(len(columns), capacity)
                ax = fig.add_subplot(grid[line, start : start + span])
                start += span
                _draw_panel(ax, table, task, columns, values, width / grid_width)
        # One legend entry per row, in row order, also for a row without bars in some panel.
        handles = [_legend_patch(index) for index in range(n_rows)]
        add_legend(fig, handles, [row_label(row) for row in table.rows], width)
        if title:
            fig.suptitle(title)
    return fig


def plot_bars(
    table: ReportTable,
    path: str | Path,
    *,
    title: str | None = None,
    width: float = COLUMN_WIDTH_IN,
    values: bool = False,
    dpi: int = DEFAULT_DPI,
) -> Path:
    """Draw the grouped bar chart of ``table`` and write it atomically to ``path`` (.png, .pdf or .svg).

    Returns:
        The written path.
    """
    plot_format(path)
    return save_figure(bars_figure(table, title=title, width=width, values=values), path, dpi)


def _draw_panel(
    ax: Axes, table: ReportTable, task: str, columns: list[Column], values: bool, group_width: float
) -> None:
    n = len(table.rows)
    bar = 0.8 / n
    top = bottom = 0.0
    value_format = "%.1f" if any(abs(v) >= 1 for v in table.all_values()) else "%.3f"  # percent or fraction

    def slot(group: int, index: int) -> float:
        return group - 0.4 + bar * (index + 0.5)

    for group, column in enumerate(columns):
        # One "n/a" over each run of neighbouring missing bars: narrow slots cannot hold one each.
        missing = [i for i, row in enumerate(table.rows) if row.value(column) is None]
        runs = [[i] for i in missing[:1]]
        for i in missing[1:]:
            if i == runs[-1][-1] + 1:
                runs[-1].append(i)
            else:
                runs.append([i])
        for run in runs:
            x = (slot(group, run[0]) + slot(group, run[-1])) / 2
            ax.text(x, 0, "n/a", rotation=90, ha="center", va="bottom", fontsize=7, color="0.45")
    for index, row in enumerate(table.rows):
        style = row_style(index)
        xs, heights, errors = [], [], []
        for group, column in enumerate(columns):
            value = row.value(column)
            if value is None:
                continue
            std, seeds = row.spread.get(column.key, (0.0, 1))
            xs.append(slot(group, index))
            heights.append(value)
            errors.append(std if seeds > 1 else math.nan)
            reach = 0 if math.isnan(errors[-1]) else errors[-1]
            top, bottom = max(top, value + reach), min(bottom, value - reach)
        if not xs:
            continue
        container = ax.bar(
            xs,
            heights,
            width=bar * 0.92,
            color=style.color,
            hatch=style.hatch,
            edgecolor="white",
            linewidth=0.4,
            label=row_label(row),
            yerr=errors,
            error_kw={"elinewidth": 0.7, "capsize": 1.5, "capthick": 0.7, "ecolor": "0.15"},
        )
        # A real 0 is a bar without height: a line in the row's colour on the baseline shows it is there.
        zeros = [x for x, h in zip(xs, heights, strict=True) if h == 0]
        if zeros:
            half = bar * 0.46
            ax.hlines(
                [0.0] * len(zeros),
                [x - half for x in zeros],
                [x + half for x in zeros],
                colors=style.color,
                linewidth=1.6,
                zorder=3,
                clip_on=False,
            )
        if values:
            ax.bar_label(container, fmt=value_format, fontsize=7, padding=1, rotation=90)
    ax.set_xticks(range(len(columns)))
    # The axes get about 3/4 of a panel's width (the rest is the y axis's labels).
    ax.set_xticklabels([_group_label(c, 0.75 * 72 * group_width) for c in columns])
    ax.set_xlim(-0.5, len(columns) - 0.5)
    headroom = 1.25 if values else 1.08
    ax.set_ylim(bottom * headroom, top * headroom if top or bottom else 1)
    ax.tick_params(axis="x", length=0)
    metrics = sorted({c.metric for c in columns if c.metric})
    ax.set_ylabel(" / ".join(f"{m} {_LOWER_MARK}" if is_lower_better(m) else m for m in metrics))
    ax.set_title(TASK_TITLES.get(task, task))
    ax.grid(axis="y", color="0.88", linewidth=0.5)
    ax.set_axisbelow(True)


def _group_label(column: Column, room: float) -> str:
    """The x label of a dataset group, broken at a hyphen or space when wider than ``room`` points."""
    name, protocol = column.title, None
    if column.protocol and "/" in column.key:  # a dataset shown under several protocols
        name, protocol = column.title.split(" (")[0], column.protocol
    if text_width(name) > room:
        breaks = [i for i, ch in enumerate(name) if ch in "- "]
        if breaks:
            at = min(breaks, key=lambda i: abs(i - len(name) / 2))
            name = f"{name[: at + 1].rstrip()}\n{name[at + 1 :]}"
    return f"{name}\n({protocol})" if protocol else name


def _legend_patch(index: int) -> Patch:
    from matplotlib.patches import Patch

    style = row_style(index)
    return Patch(facecolor=style.color, hatch=style.hatch, edgecolor="white", linewidth=0.4)


def _pack(panels: dict[str, list[Column]], capacity: int) -> list[list[str]]:
    """Tasks in order, in as few rows of at most ``capacity`` dataset groups as fit, filled evenly."""
    sizes = {task: min(len(columns), capacity) for task, columns in panels.items()}
    lines = math.ceil(sum(sizes.values()) / capacity)
    while True:
        target = max(max(sizes.values()), math.ceil(sum(sizes.values()) / lines))
        layout: list[list[str]] = [[]]
        used = 0
        for task, size in sizes.items():
            if layout[-1] and used + size > target:
                layout.append([])
                used = 0
            layout[-1].append(task)
            used += size
        if len(layout) <= lines or target >= capacity:
            return layout
        lines += 1
