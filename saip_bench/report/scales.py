"""Scale robustness: a metric against input scale, per backbone and dataset, averaged over seeds.

Records with ``scale != 1`` come from ``saip evaluate --scales``; a backbone x dataset x protocol shows up
here when it has at least one of them, with its scale-1 result as the reference point. Cells aggregate their
seeds like the main table (:func:`saip_bench.report.table.aggregate`): ``values`` are means, ``spread`` the
(std, n) the plot draws as error bars.

The two ways of probing never share a row (the ``Probe`` label): one model trained at the recipe's size and
evaluated at every scale (``train_scale`` 1, the default of ``--scales``), and a model trained at each scale
(``--train-per-scale``, records from before ``train_scale`` existed, and ``frozen``, which trains nothing).
The scale-1 result is the reference of both. Each row ends with its robustness figure
(:func:`robustness`): how much of its scale-1 result the row keeps at the other scales, in percent.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
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
    plot_format,
    row_label,
    row_style,
    save_figure,
    text_width,
)
from saip_bench.report.robustness import (
    MIN_DENOMINATOR_SHARE,
    PROBE_LABELS,
    PROBE_MEANINGS,
    SCALE_ONE_EPS,
    UNTRAINED_PROTOCOLS,
    probe_groups,
    robustness,
    robustness_spread,
    spread_withheld,
)
from saip_bench.report.table import (
    Cell,
    Column,
    ReportTable,
    Row,
    aggregate,
    backbone_rows,
    dataset_order,
    dataset_title,
    is_lower_better,
    mark_best,
    protocol_order,
    seed_notes,
)
from saip_bench.results.record import EvalRecord

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: A scale table's label columns; ``Probe`` (last, so the others keep their place) is one of
#: :data:`PROBE_LABELS`.
LABEL_HEADERS = ("Backbone", "Pretraining", "Dataset", "Protocol", "Metric", "Probe")
#: The last column of a scale table: :func:`robustness` in percent, always to one decimal.
ROBUSTNESS = Column(key="robustness", title="Robust. %", metric="Robust. %", digits=1)
#: Panels side by side per paper column of figure width.
PANELS_PER_COLUMN_WIDTH = 2


def scale_key(scale: float) -> str:
    return f"x{scale:g}"


def build_scale_table(
    records: Sequence[EvalRecord], *, metric: str | Sequence[str] | None = None, seeds: str = "all"
) -> ReportTable:
    """Rows = backbone x dataset x protocol x probe mode, columns = input scales (ascending) and the
    robustness figure; the best scale per row marked.

    A row holds the records of one probe mode (:func:`probe_groups`), labelled in its ``Probe`` column
    (:data:`PROBE_LABELS`), and shows up when it has a result at a scale other than 1. Its
    :data:`ROBUSTNESS` cell is :func:`robustness` of its cell means, with :func:`robustness_spread` as its
    spread where there is one; a row without a scale-1 result has none (the notes name it).

    Args:
        records: Evaluation records (already filtered by the caller).
        metric: What the cells show: None for the primary metric, else a choice of
            :func:`saip_bench.report.table.metric_value`.
        seeds: ``"all"`` (mean and std over seeds) or ``"latest"``, as in :func:`aggregate`.
    """
    groups = probe_groups(records)
    # (digest, dataset, protocol, mode) -> {scale: cell}, for the rows with a scale other than 1.
    found: dict[tuple[str, str, str, str], dict[float, Cell]] = {}
    for mode in ("once", "per_scale"):
        for (digest, dataset, protocol, scale), cell in aggregate(
            groups[mode], metric=metric, seeds=seeds
        ).items():
            found.setdefault((digest, dataset, protocol, mode), {})[scale] = cell
    found = {k: v for k, v in found.items() if any(abs(s - 1.0) >= SCALE_ONE_EPS for s in v)}
    scales = sorted({scale for cells in found.values() for scale in cells})
    columns = [Column(key=scale_key(s), title=scale_key(s), metric="", scale=s) for s in scales]
    labels = backbone_rows(
        [rec for cells in found.values() for cell in cells.values() for rec in cell.records]
    )

    order = {digest: i for i, digest in enumerate(labels)}
    datasets = dataset_order({k[1] for k in found})
    protocols = protocol_order({k[2] for k in found})
    rows: list[Row] = []
    unreferenced: list[str] = []
    withheld: list[str] = []
    for key in sorted(found, key=lambda k: (datasets.index(k[1]), protocols.index(k[2]), order[k[0]], k[3])):
        digest, dataset, protocol, mode = key
        mine = found[key]
        shown = "/".join(sorted({part for cell in mine.values() for part in cell.metric.split("/")}))
        probe = PROBE_LABELS["untrained" if protocol in UNTRAINED_PROTOCOLS and mode == "per_scale" else mode]
        row = Row(
            # The per-scale row keeps the key rows had before the probe trained once.
            key=f"{digest}/{dataset}/{protocol}" + ("/trained-x1" if mode == "once" else ""),
            labels=(*labels[digest], dataset_title(dataset), protocol, shown, probe),
            values={},
        )
        for scale, cell in sorted(mine.items()):
            row.put(scale_key(scale), cell)
        mark_best([(row, c.key) for c in columns], shown)
        means = {scale: cell.mean for scale, cell in mine.items()}
        lower = is_lower_better(shown)
        value = robustness(means, lower_is_better=lower)
        if value is None:
            reason = "undefined ratio" if 1.0 in mine else "no x1 result"
            unreferenced.append(f"{row.labels[0]} {row.labels[2]} ({protocol}, {probe}: {reason})")
        else:
            row.values[ROBUSTNESS.key] = value
            spread = robustness_spread(mine, metric=metric, lower_is_better=lower)
            if spread is not None:
                row.spread[ROBUSTNESS.key] = spread
            elif spread_withheld(mine, metric=metric, lower_is_better=lower):
                withheld.append(f"{row.labels[0]} {row.labels[2]} ({protocol}, {probe})")
        rows.append(row)
    if any(ROBUSTNESS.key in row.values for row in rows) or unreferenced:
        columns.append(ROBUSTNESS)
    notes = ["xS = S times the recipe's input size; best scale per row marked"] if rows else []
    notes += seed_notes(rows, seeds)
    notes += _probe_notes(rows, unreferenced, len(groups["other"]), withheld)
    return ReportTable(
        title="Primary metric vs input scale" if metric is None else "Metric vs input scale",
        label_headers=LABEL_HEADERS,
        columns=columns,
        rows=rows,
        notes=notes,
    )


def _probe_notes(
    rows: Sequence[Row], unreferenced: Sequence[str], other: int, withheld: Sequence[str]
) -> list[str]:
    """What the Probe labels and the robustness column mean, and which rows have no robustness."""
    if not rows:
        return []
    present = [label for label in PROBE_MEANINGS if any(row.labels[5] == label for row in rows)]
    notes = ["Probe: " + "; ".join(f"{label} = {PROBE_MEANINGS[label]}" for label in present)]
    notes.append(
        "Robust. % = mean over the scales other than x1 of m(xS) / m(x1) (m(x1) / m(xS) for \u2193 metrics), "
        "m the mean over seeds: 100 = as good as at x1, lower = worse"
    )
    if any(n > 1 for row in rows for key, (_, n) in row.spread.items() if key == ROBUSTNESS.key):
        notes.append("Robust. % \u00b1 = std over seeds of each seed's own ratio (seeds with every scale)")
    if withheld:
        notes.append(
            f"no Robust. % \u00b1 where a seed's x1 result (xS result for \u2193 metrics) is under "
            f"{MIN_DENOMINATOR_SHARE:.0%} of the seeds' mean (its own ratio would be dominated by it): "
            + "; ".join(withheld)
        )
    if unreferenced:
        notes.append(
            "no Robust. % (no x1 result, or a zero or negative value) for " + "; ".join(unreferenced)
        )
    if other:
        notes.append(f"{other} record(s) left out: trained at neither x1 nor the evaluated scale")
    return notes


def scale_panels(table: ReportTable) -> dict[tuple[str, str], list[Row]]:
    """The rows of a scale table by (dataset title, protocol): one plot panel each, in table order."""
    panels: dict[tuple[str, str], list[Row]] = {}
    for row in table.rows:
        panels.setdefault((row.labels[2], row.labels[3]), []).append(row)
    return panels


def scales_figure(table: ReportTable, *, title: str | None = None, width: float = COLUMN_WIDTH_IN) -> Figure:
    """Metric against input scale: one panel per dataset x protocol, one line per row (backbone).

    The x ticks are the scales evaluated in the panel; error bars are one standard deviation over seeds
    (cells of two or more seeds); the dotted line marks the recipe's own size. One legend for all panels,
    below them, in the order and styles of the backbones (a backbone keeps its style in every panel). Each
    line's robustness figure (:data:`ROBUSTNESS`) is in that legend when there is one panel (``saip_tiny
    (R 93%)``), else in a row of markers along the top of its panel, in a band kept free of data. When the
    table has both probe modes among rows that train, lines trained per scale have hollow markers and their
    own legend entry (``saip_tiny, per scale``).

    Args:
        table: A scale table (:func:`build_scale_table`).
        title: Title above the panels; none by default.
        width: Figure width in inches; :data:`PANELS_PER_COLUMN_WIDTH` panels per paper column side by side.

    Raises:
        SaipError: if the table has no rows.
    """
    from matplotlib.lines import Line2D

    if table.is_empty:
        raise SaipError("nothing to plot: no records at a scale other than 1")
    panels = scale_panels(table)
    columns = [c for c in table.columns if c.scale is not None]
    backbones = list(dict.fromkeys(row.labels[:2] for row in table.rows))
    trained = {row.labels[5] for row in table.rows if row.labels[5] != PROBE_LABELS["untrained"]}
    modes = len(trained) > 1
    one_panel = len(panels) == 1

    def per_scale(row: Row) -> bool:
        return modes and row.labels[5] == PROBE_LABELS["per_scale"]

    def series(row: Row) -> tuple[str, ...]:
        return (*row.labels[:2], "per scale" if per_scale(row) else "")

    def figure_text(row: Row) -> str:
        value = row.value(ROBUSTNESS)
        return "" if value is None else f"R {value:.0f}%"

    labels: dict[tuple[str, ...], str] = {}
    for row in table.rows:
        label = row_label(row) + (", per scale" if per_scale(row) else "")
        labels.setdefault(
            series(row), label + (f" ({figure_text(row)})" if one_panel and figure_text(row) else "")
        )
    lines = list(labels)
    per_line = max(1, round(PANELS_PER_COLUMN_WIDTH * width / COLUMN_WIDTH_IN))
    cols = min(per_line, len(panels))
    n_lines = math.ceil(len(panels) / cols)
    panel_height = min(2.2, 0.85 * width / cols)
    legend_rows = math.ceil(len(lines) / legend_columns(list(labels.values()), width, handlelength=2.6))

    with paper_style():
        fig = new_figure(width, panel_height * n_lines + 0.14 + 0.16 * legend_rows + (0.2 if title else 0))
        handles: dict[tuple[str, ...], object] = {}
        for i, ((dataset, protocol), rows) in enumerate(panels.items()):
            ax = fig.add_subplot(n_lines, cols, i + 1)
            scales = [c.scale for c in columns if any(row.value(c) is not None for row in rows)]
            gap = min((b - a for a, b in zip(scales, scales[1:], strict=False)), default=0.25)
            marks: list[tuple[Line2D, str]] = []
            for row in rows:
                style = row_style(backbones.index(row.labels[:2]))
                points = [
                    (c.scale, v, row.spread.get(c.key, (0.0, 1)))
                    for c in columns
                    if (v := row.value(c)) is not None
                ]
                # A small sideways shift per line keeps overlapping error bars apart.
                shift = (lines.index(series(row)) - (len(lines) - 1) / 2) * 0.06 * gap
                face = "white" if per_scale(row) else style.color
                handle = ax.errorbar(
                    [s + shift for s, _, _ in points],
                    [v for _, v, _ in points],
                    yerr=[std if n > 1 else math.nan for _, _, (std, n) in points],
                    **style.line(),
                    linewidth=1.1,
                    markersize=3.5,
                    markerfacecolor=face,
                    elinewidth=0.7,
                    capsize=1.8,
                    capthick=0.7,
                )
                handles.setdefault(series(row), handle)
                if figure_text(row):
                    mark = Line2D(
                        [], [], color=style.color, marker=style.marker, markerfacecolor=face, linestyle=""
                    )
                    marks.append((mark, figure_text(row)))
            ax.axvline(1.0, color="0.6", linewidth=0.6, linestyle=":", zorder=0)
            ax.set_xticks(scales)
            ax.set_xticklabels([f"{s:g}" for s in scales])
            ax.set_xlim(scales[0] - 0.5 * gap, scales[-1] + 0.5 * gap)
            metric = rows[0].labels[4]
            ax.set_ylabel(f"{metric} \u2193" if is_lower_better(metric) else metric)
            ax.set_title(f"{dataset} ({protocol})" if len({p for _, p in panels}) > 1 else dataset)
            ax.grid(color="0.9", linewidth=0.5)
            if i >= len(panels) - cols:
                ax.set_xlabel("input scale (\u00d7 recipe size)")
            if marks and not one_panel:
                _robustness_band(ax, marks, width / cols, panel_height)
        if title:
            fig.suptitle(title)
        add_legend(fig, [handles[s] for s in lines], [labels[s] for s in lines], width, handlelength=2.6)
    return fig


def _robustness_band(ax: object, marks: Sequence[tuple[object, str]], width: float, height: float) -> None:
    """The panel's robustness figures as a legend along its top, in a band the y limits keep free of data.

    ``width`` and ``height`` are the panel's share of the figure, in inches.
    """
    size = 7.0  # the legend font: no text under 7 pt at column width
    # An entry is its marker, text and spacing (2.2 em); about 0.45 in of the panel go to the y axis.
    entry = (max(text_width(t, size) for _, t in marks) + 2.2 * size) / 72
    rows = math.ceil(len(marks) / max(1, min(len(marks), int((width - 0.45) / entry))))
    ncols = math.ceil(len(marks) / rows)  # as many entries in every line as the lines allow
    band = (rows * 1.35 * size + 3) / 72  # inches
    axes_height = max(height - 0.55, 2 * band)  # the panel less its title and tick labels
    low, high = ax.get_ylim()  # type: ignore[attr-defined]
    ax.set_ylim(low, high + (high - low) * band / (axes_height - band))  # type: ignore[attr-defined]
    ax.legend(  # type: ignore[attr-defined]
        [m for m, _ in marks],
        [t for _, t in marks],
        loc="upper center",
        ncols=ncols,
        fontsize=size,
        frameon=False,
        handlelength=0.8,
        handletextpad=0.3,
        columnspacing=0.9,
        labelspacing=0.2,
        borderaxespad=0.1,
        borderpad=0.1,
    )


def plot_scales(
    table: ReportTable,
    path: str | Path,
    *,
    title: str | None = None,
    width: float = COLUMN_WIDTH_IN,
    dpi: int = DEFAULT_DPI,
) -> Path:
    """Draw :func:`scales_figure` of ``table`` and write it atomically to ``path`` (.png, .pdf or .svg).

    Returns:
        The written path.
    """
    plot_format(path)
    return save_figure(scales_figure(table, title=title, width=width), path, dpi)
