"""Scale robustness: the primary metric against input scale, per backbone and dataset.

Records with ``scale != 1`` come from ``saip evaluate --scales``; a backbone x dataset x protocol shows up
here when it has at least one of them, with its scale-1 result as the reference point.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from saip_bench.errors import SaipError
from saip_bench.report.radar import save_figure
from saip_bench.report.table import (
    Column,
    ReportTable,
    Row,
    backbone_rows,
    dataset_order,
    dataset_title,
    is_unit_scale,
    latest,
    mark_best,
    protocol_order,
)
from saip_bench.results.record import EvalRecord

LABEL_HEADERS = ("Backbone", "Pretraining", "Dataset", "Protocol", "Metric")


def scale_key(scale: float) -> str:
    return f"x{scale:g}"


def build_scale_table(records: Sequence[EvalRecord]) -> ReportTable:
    """Rows = backbone x dataset x protocol, columns = input scales (ascending), best scale per row marked."""
    cells = latest(records)
    probed = {(d, ds, p) for (d, ds, p, _), rec in cells.items() if not is_unit_scale(rec)}
    used = [rec for (d, ds, p, _), rec in cells.items() if (d, ds, p) in probed]
    scales = sorted({round(rec.scale, 9) for rec in used})
    columns = [Column(key=scale_key(s), title=scale_key(s), metric="", scale=s) for s in scales]
    labels = backbone_rows(used)

    rows: list[Row] = []
    order = {d: i for i, d in enumerate(labels)}
    datasets = dataset_order({ds for _, ds, _ in probed})
    for digest, dataset, protocol in sorted(
        probed,
        key=lambda k: (
            datasets.index(k[1]),
            protocol_order({p for _, _, p in probed}).index(k[2]),
            order[k[0]],
        ),
    ):
        recs = [r for r in used if (r.backbone_digest, r.dataset, r.protocol) == (digest, dataset, protocol)]
        metric = "/".join(sorted({r.primary_metric for r in recs}))
        row = Row(
            key=f"{digest}/{dataset}/{protocol}",
            labels=(*labels[digest], dataset_title(dataset), protocol, metric),
            values={scale_key(round(r.scale, 9)): r.primary_value for r in recs},
        )
        mark_best([(row, c.key) for c in columns], metric)
        rows.append(row)
    notes = ["xS = S times the recipe's input size; best scale per row marked"] if rows else []
    return ReportTable(
        title="Primary metric vs input scale",
        label_headers=LABEL_HEADERS,
        columns=columns,
        rows=rows,
        notes=notes,
    )


def plot_scales(table: ReportTable, path: str | Path, *, dpi: int = 120) -> Path:
    """One panel per dataset x protocol, one line per backbone: metric against scale; written atomically."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if table.is_empty:
        raise SaipError("nothing to plot: no records at a scale other than 1")
    panels: dict[tuple[str, str], list[Row]] = {}
    for row in table.rows:
        panels.setdefault((row.labels[2], row.labels[3]), []).append(row)
    cols = min(3, len(panels))
    nrows = -(-len(panels) // cols)
    fig = Figure(figsize=(4.5 * cols, 3.6 * nrows))
    FigureCanvasAgg(fig)
    for i, ((dataset, protocol), rows) in enumerate(panels.items()):
        ax = fig.add_subplot(nrows, cols, i + 1)
        for row in rows:
            points = [(c.scale, v) for c in table.columns if (v := row.value(c)) is not None]
            xs, ys = zip(*points, strict=True)
            ax.plot(xs, ys, marker="o", label=row.labels[0])
        ax.axvline(1.0, color="grey", linewidth=0.8, linestyle=":")
        ax.set_title(f"{dataset} ({protocol})", fontsize=10)
        ax.set_xlabel("input scale")
        ax.set_ylabel(rows[0].labels[4])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path, dpi)
