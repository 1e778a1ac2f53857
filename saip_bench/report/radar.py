"""The overview radar chart: one polygon per backbone over the 12 datasets, like the SAIP paper's figure.

Each axis has its own range (the datasets' metrics differ by tens of points): a value is drawn at
``value / best`` on its axis, so the best backbone touches the rim and the axis label names the best value.
A missing result is drawn at the centre (0), not as a gap, so every polygon stays closed; axes with no result
at all are labelled "no data". matplotlib is imported here, lazily, through its Agg canvas (no GUI, no
global pyplot state).
"""

from __future__ import annotations

import math
from pathlib import Path

from saip_bench.datasets import EVAL_DATASETS
from saip_bench.errors import SaipError
from saip_bench.io import atomic_path
from saip_bench.report.table import LOWER_IS_BETTER, ReportTable, dataset_order, dataset_title


def radar_axes(table: ReportTable) -> list[tuple[str, str | None]]:
    """(axis label, column key or None) for the 12 datasets in the paper's order (plus any other dataset).

    Raises:
        SaipError: if a dataset has several protocol columns (one value per axis is needed).
    """
    by_dataset: dict[str, str] = {}
    for column in table.columns:
        if column.dataset is None:
            continue
        if column.dataset in by_dataset:
            raise SaipError(
                f"the radar plot needs one value per dataset, but {dataset_title(column.dataset)} has "
                "several protocols; choose one with --protocol"
            )
        by_dataset[column.dataset] = column.key
    names = dataset_order(set(EVAL_DATASETS) | set(by_dataset))
    return [(dataset_title(name), by_dataset.get(name)) for name in names]


def plot_radar(table: ReportTable, path: str | Path, *, title: str | None = None, dpi: int = 120) -> Path:
    """Draw the radar chart of ``table`` and write it atomically to ``path`` (PNG, or PDF/SVG by suffix).

    Args:
        table: A backbone x dataset table from :func:`saip_bench.report.table.build_report_table`.
        path: Output image file.
        title: Figure title; defaults to the table's.
        dpi: Resolution of raster output.

    Returns:
        The written path.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if table.is_empty:
        raise SaipError("nothing to plot: the report has no rows")
    axes = radar_axes(table)
    columns = {c.key: c for c in table.columns}
    n = len(axes)
    angles = [2 * math.pi * i / n for i in range(n)]

    bests: list[tuple[float, bool] | None] = []  # (best value, lower is better) per axis
    labels: list[str] = []
    for label, key in axes:
        values = [v for row in table.rows if key is not None and (v := row.value(key)) is not None]
        metric = columns[key].metric if key is not None else ""
        lower = metric in LOWER_IS_BETTER
        best = (min if lower else max)(values) if values else 0.0
        if not values or best <= 0:
            bests.append(None)
            labels.append(f"{label}\n(no data)" if not values else f"{label}\n{metric} {best:.1f}")
            continue
        bests.append((best, lower))
        labels.append(f"{label}\n{metric} {best:.1f}")

    fig = Figure(figsize=(8, 8))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(projection="polar")
    closed = [*angles, angles[0]]
    for row in table.rows:
        radii = []
        for (_, key), axis in zip(axes, bests, strict=True):
            value = row.value(key) if key is not None else None
            if value is None or axis is None:
                radii.append(0.0)
            elif axis[1]:  # lower is better: best / value keeps the best at the rim
                radii.append(min(1.0, axis[0] / value) if value > 0 else 1.0)
            else:
                radii.append(max(0.0, value / axis[0]))
        name = " / ".join(row.labels[:2]) if len(row.labels) > 1 else row.labels[0]
        (line,) = ax.plot(closed, [*radii, radii[0]], linewidth=1.8, label=name)
        ax.fill(closed, [*radii, radii[0]], alpha=0.12, color=line.get_color())
    # The paper's figure reads clockwise from the top.
    ax.set_theta_offset(math.pi / 2)
    ax.set_theta_direction(-1)
    ax.set_xticks(angles)
    ax.set_xticklabels(labels, fontsize=8)
    ax.tick_params(axis="x", pad=10)
    ax.set_ylim(0, 1.05)
    ax.set_yticks([0.25, 0.5, 0.75, 1.0])
    ax.set_yticklabels([])
    ax.set_title(title or "saip-bench overview", pad=28)
    ax.legend(loc="upper right", bbox_to_anchor=(1.32, 1.12), fontsize=8)
    fig.text(
        0.02,
        0.02,
        "each axis scaled to its best value; missing results drawn at the centre",
        fontsize=7,
        color="grey",
    )
    return save_figure(fig, path, dpi)


def save_figure(fig, path: str | Path, dpi: int) -> Path:
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() or "png"
    if fmt not in {"png", "pdf", "svg"}:
        raise SaipError(f"{path}: plot files must end in .png, .pdf or .svg")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, dpi=dpi, bbox_inches="tight")
    return path
