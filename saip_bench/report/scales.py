"""Scale robustness: a metric against input scale, per backbone and dataset, averaged over seeds.

Records with ``scale != 1`` come from ``saip evaluate --scales``; a backbone x dataset x protocol shows up
here when it has at least one of them, with its scale-1 result as the reference point. Cells aggregate their
seeds like the main table (:func:`saip_bench.report.table.aggregate`): ``values`` are means, ``spread`` the
(std, n) the plot draws as error bars.
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
    new_figure,
    paper_style,
    plot_format,
    row_label,
    row_style,
    save_figure,
)
from saip_bench.report.table import (
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

LABEL_HEADERS = ("Backbone", "Pretraining", "Dataset", "Protocol", "Metric")
#: Panels side by side per paper column of figure width.
PANELS_PER_COLUMN_WIDTH = 2
_SCALE_ONE_EPS = 1e-9


def scale_key(scale: float) -> str:
    return f"x{scale:g}"


def build_scale_table(
    records: Sequence[EvalRecord], *, metric: str | Sequence[str] | None = None, seeds: str = "all"
) -> ReportTable:
    """Rows = backbone x dataset x protocol, columns = input scales (ascending), best scale per row marked.

    Args:
        records: Evaluation records (already filtered by the caller).
        metric: What the cells show: None for the primary metric, else a choice of
            :func:`saip_bench.report.table.metric_value`.
        seeds: ``"all"`` (mean and std over seeds) or ``"latest"``, as in :func:`aggregate`.
    """
    cells = aggregate(records, metric=metric, seeds=seeds)
    probed = {(d, ds, p) for (d, ds, p, scale) in cells if abs(scale - 1.0) >= _SCALE_ONE_EPS}
    used = {key: cell for key, cell in cells.items() if key[:3] in probed}
    scales = sorted({key[3] for key in used})
    columns = [Column(key=scale_key(s), title=scale_key(s), metric="", scale=s) for s in scales]
    labels = backbone_rows([rec for cell in used.values() for rec in cell.records])

    order = {digest: i for i, digest in enumerate(labels)}
    datasets = dataset_order({ds for _, ds, _ in probed})
    protocols = protocol_order({p for _, _, p in probed})
    rows: list[Row] = []
    for digest, dataset, protocol in sorted(
        probed, key=lambda k: (datasets.index(k[1]), protocols.index(k[2]), order[k[0]])
    ):
        mine = {key[3]: cell for key, cell in used.items() if key[:3] == (digest, dataset, protocol)}
        shown = "/".join(sorted({part for cell in mine.values() for part in cell.metric.split("/")}))
        row = Row(
            key=f"{digest}/{dataset}/{protocol}",
            labels=(*labels[digest], dataset_title(dataset), protocol, shown),
            values={},
        )
        for scale, cell in mine.items():
            row.put(scale_key(scale), cell)
        mark_best([(row, c.key) for c in columns], shown)
        rows.append(row)
    notes = ["xS = S times the recipe's input size; best scale per row marked"] if rows else []
    notes += seed_notes(rows, seeds)
    return ReportTable(
        title="Primary metric vs input scale" if metric is None else "Metric vs input scale",
        label_headers=LABEL_HEADERS,
        columns=columns,
        rows=rows,
        notes=notes,
    )


def scale_panels(table: ReportTable) -> dict[tuple[str, str], list[Row]]:
    """The rows of a scale table by (dataset title, protocol): one plot panel each, in table order."""
    panels: dict[tuple[str, str], list[Row]] = {}
    for row in table.rows:
        panels.setdefault((row.labels[2], row.labels[3]), []).append(row)
    return panels


def scales_figure(table: ReportTable, *, title: str | None = None, width: float = COLUMN_WIDTH_IN) -> Figure:
    """Metric against input scale: one panel per dataset x protocol, one line per backbone.

    The x ticks are the scales evaluated in the panel; error bars are one standard deviation over seeds
    (cells of two or more seeds); the dotted line marks the recipe's own size. One legend for all panels,
    below them, in the order and styles of the backbones (a backbone keeps its style in every panel).

    Args:
        table: A scale table (:func:`build_scale_table`).
        title: Title above the panels; none by default.
        width: Figure width in inches; :data:`PANELS_PER_COLUMN_WIDTH` panels per paper column side by side.

    Raises:
        SaipError: if the table has no rows.
    """
    if table.is_empty:
        raise SaipError("nothing to plot: no records at a scale other than 1")
    panels = scale_panels(table)
    backbones = list(dict.fromkeys(row.labels[:2] for row in table.rows))
    per_line = max(1, round(PANELS_PER_COLUMN_WIDTH * width / COLUMN_WIDTH_IN))
    cols = min(per_line, len(panels))
    n_lines = math.ceil(len(panels) / cols)
    panel_height = min(2.2, 0.85 * width / cols)

    with paper_style():
        fig = new_figure(width, panel_height * n_lines + 0.3 + (0.2 if title else 0))
        handles: dict[tuple[str, ...], object] = {}
        labels: dict[tuple[str, ...], str] = {}
        for i, ((dataset, protocol), rows) in enumerate(panels.items()):
            ax = fig.add_subplot(n_lines, cols, i + 1)
            scales = [c.scale for c in table.columns if any(row.value(c) is not None for row in rows)]
            gap = min((b - a for a, b in zip(scales, scales[1:], strict=False)), default=0.25)
            for row in rows:
                index = backbones.index(row.labels[:2])
                points = [
                    (c.scale, v, row.spread.get(c.key, (0.0, 1)))
                    for c in table.columns
                    if (v := row.value(c)) is not None
                ]
                # A small sideways shift per backbone keeps overlapping error bars apart.
                shift = (index - (len(backbones) - 1) / 2) * 0.06 * gap
                xs = [s + shift for s, _, _ in points]
                ys = [v for _, v, _ in points]
                errors = [std if n > 1 else math.nan for _, _, (std, n) in points]
                handle = ax.errorbar(
                    xs,
                    ys,
                    yerr=errors,
                    **row_style(index).line(),
                    linewidth=1.1,
                    markersize=3.5,
                    elinewidth=0.7,
                    capsize=1.8,
                    capthick=0.7,
                )
                handles.setdefault(row.labels[:2], handle)
                labels.setdefault(row.labels[:2], row_label(row))
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
        if title:
            fig.suptitle(title)
        add_legend(
            fig, [handles[b] for b in backbones], [labels[b] for b in backbones], width, handlelength=2.6
        )
    return fig


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
