"""Where a table's numbers come from: per cell the budget, seeds, config digests and code; per record its run.

Every export carries :func:`cell_provenance` for each cell (CSV and JSON in full, Markdown in a folded
section, LaTeX as comments); ``saip report --records FILE`` writes :func:`record_rows`, one line per record
behind the table, with the run directory ``saip evaluate`` wrote it from.
"""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from saip_bench.report.table import Cell, ReportTable
from saip_bench.results.record import EvalRecord

#: ``--records`` columns before the metrics (one ``metric:NAME`` column per metric name after them).
RECORD_FIELDS: tuple[str, ...] = (
    "id",
    "uid",
    "backbone_name",
    "backbone_digest",
    "pretrain_method",
    "task",
    "dataset",
    "protocol",
    "budget",
    "scale",
    "seed",
    "primary_metric",
    "primary_value",
    "config_digest",
    "package_version",
    "git_revision",
    "started_at",
    "ended_at",
    "duration_s",
    "run_dir",
)


def cell_provenance(cell: Cell) -> dict[str, Any]:
    """The budget, protocol, scale, seeds, config digests, package versions and git revisions of ``cell``.

    Single values where the records agree (budget, protocol, scale), lists in record order otherwise.
    """
    recs = cell.records
    return {
        "budget": "/".join(sorted({r.budget for r in recs})),
        "protocol": "/".join(sorted({r.protocol for r in recs})),
        "scale": recs[0].scale if recs else None,
        "seeds": list(cell.seeds),
        "config_digests": _unique(r.config_digest for r in recs),
        "package_versions": _unique(r.package_version for r in recs),
        "git_revisions": _unique(r.git_revision or "" for r in recs),
        "record_ids": [r.id for r in recs],
    }


def metric_summary(records: Sequence[EvalRecord]) -> dict[str, tuple[float, float, int]]:
    """Every metric of ``records`` as (mean, sample std, n), NaN results left out; std 0.0 when n == 1."""
    values: dict[str, list[float]] = {}
    for rec in records:
        for name, value in {rec.primary_metric: rec.primary_value, **rec.metrics}.items():
            kept = values.setdefault(name, [])
            if not math.isnan(float(value)):
                kept.append(float(value))
    return {
        name: (
            statistics.fmean(vs) if vs else math.nan,
            statistics.stdev(vs) if len(vs) > 1 else 0.0,
            len(vs),
        )
        for name, vs in values.items()
    }


def table_records(table: ReportTable) -> list[EvalRecord]:
    """Every record behind ``table``'s cells, once each, oldest first."""
    seen: dict[int, EvalRecord] = {}
    for row in table.rows:
        for cell in row.cells.values():
            for rec in cell.records:
                seen.setdefault(id(rec), rec)
    return sorted(seen.values(), key=lambda r: (r.id is None, r.id or 0))


def run_dir(record: EvalRecord, workspace: Path | None = None) -> str:
    """The run directory ``saip evaluate`` used for ``record`` (under ``workspace``, else ``runs/...``).

    The record does not store it; the name is rebuilt the way :mod:`saip_bench.evaluate.dispatch` builds it.
    """
    from saip_bench.evaluate.dispatch import _run_dir_name

    name = _run_dir_name(
        record.backbone_name,
        record.backbone_digest,
        record.protocol,
        record.budget,
        record.config_digest,
        record.scale,
    )
    relative = Path("runs") / record.dataset / name
    return str(workspace / relative if workspace is not None else relative)


def record_rows(records: Sequence[EvalRecord], workspace: Path | None = None) -> list[dict[str, Any]]:
    """One dict per record: :data:`RECORD_FIELDS` and every metric under ``metric:NAME``."""
    rows = []
    for rec in records:
        row: dict[str, Any] = {name: getattr(rec, name) for name in RECORD_FIELDS if name != "run_dir"}
        row["run_dir"] = run_dir(rec, workspace)
        row.update({f"metric:{name}": float(value) for name, value in rec.metrics.items()})
        rows.append(row)
    return rows


def records_csv(records: Sequence[EvalRecord], workspace: Path | None = None) -> str:
    """:func:`record_rows` as CSV: one column per field, then one per metric name (empty where absent)."""
    rows = record_rows(records, workspace)
    metric_columns = _unique(key for row in rows for key in row if key.startswith("metric:"))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, [*RECORD_FIELDS, *metric_columns], restval="", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(
            {k: ("" if v is None else repr(v) if isinstance(v, float) else v) for k, v in row.items()}
        )
    return buffer.getvalue()


def records_json(records: Sequence[EvalRecord], workspace: Path | None = None) -> str:
    """:func:`record_rows` as a JSON list, metrics nested under ``"metrics"``."""
    out = []
    for rec, row in zip(records, record_rows(records, workspace), strict=True):
        plain = {
            k: _finite(v) if isinstance(v, float) else v
            for k, v in row.items()
            if not k.startswith("metric:")
        }
        out.append({**plain, "metrics": {k: _finite(v) for k, v in rec.metrics.items()}})
    return json.dumps(out, indent=2) + "\n"


#: ``--records`` writers by file extension.
RECORD_WRITERS = {".csv": records_csv, ".json": records_json}


def _finite(value: float) -> float | None:
    value = float(value)
    return None if math.isnan(value) or math.isinf(value) else value


def _unique(items: Any) -> list:
    out: list = []
    for item in items:
        if item not in out:
            out.append(item)
    return out
