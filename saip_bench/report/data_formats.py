"""The table as data: long-format CSV and JSON, full precision, every metric and the provenance of each cell.

CSV has one line per cell and metric (pandas' ``pivot`` turns it back into any table); JSON keeps the
table's shape (columns, rows, best-marks, notes) with the same per-cell detail. Neither rounds or marks up.
"""

from __future__ import annotations

import csv
import io
import json
import math
from typing import Any

from saip_bench.report.metrics import is_lower_better
from saip_bench.report.provenance import cell_provenance, metric_summary
from saip_bench.report.table import Column, ReportTable, Row

#: Long-format CSV columns after the table's own label headers.
CSV_FIELDS: tuple[str, ...] = (
    "column",
    "column_title",
    "dataset",
    "protocol",
    "scale",
    "budget",
    "metric",
    "shown",
    "lower_is_better",
    "mean",
    "std",
    "n",
    "seeds",
    "best",
    "config_digests",
    "package_versions",
    "git_revisions",
    "record_ids",
)


def to_csv(table: ReportTable) -> str:
    """Long-format CSV: one line per cell and metric, at full precision (``repr``), no markup.

    A cell's first line is the metric its column shows (``shown`` = 1, ``best`` = 1 when best-marked), then
    one line per other metric of the same records (``shown`` = 0): every metric of every record reaches the
    file, each as mean, sample std and n over the cell's seeds, with the cell's provenance (budget, protocol,
    scale, seeds, config digests, package versions, git revisions, record ids; lists joined by ``;``).
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*table.label_headers, *CSV_FIELDS])
    for line in long_rows(table):
        writer.writerow([_csv_value(line[k]) for k in (*table.label_headers, *CSV_FIELDS)])
    return buffer.getvalue()


def long_rows(table: ReportTable) -> list[dict[str, Any]]:
    """The lines of :func:`to_csv` as dicts (label headers and :data:`CSV_FIELDS`): per cell its shown
    metric, then the other metrics of its records that no column shows already."""
    shown = {
        (i, _shown_metric(row, column), tuple(id(rec) for rec in row.cells[column.key].records))
        for i, row in enumerate(table.rows)
        for column in table.columns
        if column.key in row.cells
    }
    out: list[dict[str, Any]] = []
    for i, row in enumerate(table.rows):
        labels = dict(zip(table.label_headers, row.labels, strict=True))
        for column in table.columns:
            value = row.value(column)
            if value is None:
                continue
            std, n = row.spread.get(column.key, (0.0, 1))
            base = {**labels, **_cell_fields(row, column)}
            metric = _shown_metric(row, column)
            out.append(
                {
                    **base,
                    "metric": metric,
                    "shown": 1,
                    "lower_is_better": int(is_lower_better(metric)),
                    "mean": value,
                    "std": std,
                    "n": n,
                    "best": int(column.key in row.best),
                }
            )
            cell = row.cells.get(column.key)
            if cell is None:
                continue
            ids = tuple(id(rec) for rec in cell.records)
            for name, (mean, m_std, m_n) in metric_summary(cell.records).items():
                if (i, name, ids) in shown:
                    continue
                shown.add((i, name, ids))
                out.append(
                    {
                        **base,
                        "metric": name,
                        "shown": 0,
                        "lower_is_better": int(is_lower_better(name)),
                        "mean": mean,
                        "std": m_std,
                        "n": m_n,
                        "best": "",
                    }
                )
    return out


def _shown_metric(row: Row, column: Column) -> str:
    # A scale table's columns are scales: the metric is the cell's (also in the row's labels).
    cell = row.cells.get(column.key)
    return column.metric or (cell.metric if cell is not None else "")


def _cell_fields(row: Row, column: Column) -> dict[str, Any]:
    """The provenance fields of one CSV line (empty where the builder kept no records)."""
    fields: dict[str, Any] = {
        "column": column.key,
        "column_title": column.title,
        "dataset": column.dataset or "",
        "protocol": column.protocol or "",
        "scale": column.scale,
        **dict.fromkeys(("budget", "seeds", "config_digests", "package_versions", "git_revisions"), ""),
        "record_ids": "",
    }
    cell = row.cells.get(column.key)
    if cell is None:
        # A value of the whole row (a scale table's robustness): the dataset and protocol of its cells.
        first = next(iter(row.cells.values()), None)
        if first is not None and column.dataset is None:
            fields.update(dataset=first.records[0].dataset, protocol=first.records[0].protocol)
        return fields
    prov = cell_provenance(cell)
    fields.update(
        dataset=cell.records[0].dataset,
        protocol=prov["protocol"],
        scale=prov["scale"],
        budget=prov["budget"],
        seeds=";".join(str(s) for s in prov["seeds"]),
        config_digests=";".join(prov["config_digests"]),
        package_versions=";".join(prov["package_versions"]),
        git_revisions=";".join(prov["git_revisions"]),
        record_ids=";".join("" if r is None else str(r) for r in prov["record_ids"]),
    )
    return fields


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)
    return str(value)


def to_json(table: ReportTable) -> str:
    """The table as JSON: columns (with ``lower_is_better``), every row's means (``values``, null when
    missing), ``spread`` (std and n), best-marks, and per cell its provenance and every metric of its
    records (mean, std, n); notes and the columns whose best is within one std of the runner-up."""

    def cell_obj(row: Row, column: Column) -> dict[str, Any] | None:
        value = row.value(column)
        if value is None:
            return None
        std, n = row.spread.get(column.key, (0.0, 1))
        obj: dict[str, Any] = {"mean": value, "std": std, "n": n, "best": column.key in row.best}
        cell = row.cells.get(column.key)
        if cell is not None:
            obj.update(cell_provenance(cell))
            obj["metrics"] = {
                name: {"mean": _finite(m), "std": _finite(s), "n": k}
                for name, (m, s, k) in metric_summary(cell.records).items()
            }
        return obj

    def row_obj(row: Row) -> dict[str, Any]:
        return {
            "labels": dict(zip(table.label_headers, row.labels, strict=True)),
            "key": row.key,
            "values": {c.key: row.value(c) for c in table.columns},
            "spread": {
                c.key: {"std": row.spread[c.key][0], "n": row.spread[c.key][1]}
                for c in table.columns
                if c.key in row.spread and row.value(c) is not None
            },
            "best": sorted(row.best),
            "cells": {c.key: cell_obj(row, c) for c in table.columns},
        }

    obj = {
        "title": table.title,
        "label_headers": list(table.label_headers),
        "columns": [
            {
                "key": c.key,
                "title": c.title,
                "metric": c.metric,
                "lower_is_better": is_lower_better(c.metric),
                "dataset": c.dataset,
                "protocol": c.protocol,
                "scale": c.scale,
            }
            for c in table.columns
        ],
        "rows": [row_obj(row) for row in table.rows],
        "notes": table.notes,
        "best_within_one_std": list(table.unseparated),
    }
    return json.dumps(obj, indent=2, ensure_ascii=False) + "\n"


def _finite(value: float) -> float | None:
    return None if math.isnan(value) or math.isinf(value) else value
