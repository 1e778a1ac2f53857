"""The report's table model: plain rows and columns built from evaluation records, no rendering, no pandas.

Exporters (:mod:`saip_bench.report.export`) and plots render a :class:`ReportTable`; builders here decide
which records go where: the latest record per backbone x dataset x protocol, datasets in the paper's order,
best value per column marked.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from saip_bench.datasets import DATASETS
from saip_bench.results.record import EvalRecord

#: Primary metrics where smaller is better (CrowdHuman's log-average miss rate); every other one is "higher".
LOWER_IS_BETTER: frozenset[str] = frozenset({"MR-2", "MR", "mMR", "miss_rate"})
#: Protocol order in column headers: the paper's fine-tuning first, then the fast probes.
PROTOCOL_ORDER: tuple[str, ...] = ("finetune", "linear", "frozen")
_SCALE_ONE_EPS = 1e-9


@dataclass(frozen=True)
class Column:
    """One value column: a dataset (optionally under one protocol), or one input scale."""

    key: str  # unique within the table, e.g. "market1501" or "market1501/frozen" or "x0.75"
    title: str  # header text, e.g. "Market-1501" or "Market-1501 (frozen)" or "x0.75"
    metric: str  # the metric the column shows, e.g. "mAP"
    dataset: str | None = None
    protocol: str | None = None
    scale: float | None = None


@dataclass
class Row:
    """One table row: label cells (backbone, method, ...), values by column key, best-marked keys."""

    key: str
    labels: tuple[str, ...]
    values: dict[str, float | None]
    best: set[str] = field(default_factory=set)

    def value(self, column: Column | str) -> float | None:
        """The value in ``column`` (a Column or its key); None when missing."""
        key = column if isinstance(column, str) else column.key
        value = self.values.get(key)
        return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


@dataclass
class ReportTable:
    """Rows of labels and numbers ready to render; ``notes`` are one-line remarks shown under the table."""

    title: str
    label_headers: tuple[str, ...]
    columns: list[Column]
    rows: list[Row]
    notes: list[str] = field(default_factory=list)

    @property
    def is_empty(self) -> bool:
        return not self.rows

    def all_values(self) -> list[float]:
        """Every present value, for choosing a display precision."""
        return [v for row in self.rows for col in self.columns if (v := row.value(col)) is not None]


def is_unit_scale(record: EvalRecord) -> bool:
    """Whether ``record`` was evaluated at the recipe's own input size."""
    return abs(record.scale - 1.0) < _SCALE_ONE_EPS


def latest(records: Iterable[EvalRecord]) -> dict[tuple, EvalRecord]:
    """The latest record per backbone x dataset x protocol x scale (highest id; else given order)."""
    out: dict[tuple, EvalRecord] = {}
    for rec in _ordered(records):
        out[(rec.backbone_digest, rec.dataset, rec.protocol, round(rec.scale, 9))] = rec
    return out


def dataset_order(names: Iterable[str]) -> list[str]:
    """``names`` in the paper's order (:data:`saip_bench.datasets.DATASETS`), unknown ones after, sorted."""
    names = set(names)
    known = [n for n in DATASETS.names() if n in names]
    return known + sorted(names - set(known))


def protocol_order(names: Iterable[str]) -> list[str]:
    names = set(names)
    return [p for p in PROTOCOL_ORDER if p in names] + sorted(names - set(PROTOCOL_ORDER))


def dataset_title(name: str) -> str:
    return DATASETS.get(name).title if name in DATASETS else name


def backbone_rows(records: Sequence[EvalRecord]) -> dict[str, tuple[str, ...]]:
    """Row labels (name, method) per backbone digest, in order of first appearance.

    Two different weights with the same name get their digest's first 8 characters appended, so rows
    never look identical.
    """
    labels: dict[str, tuple[str, str]] = {}
    for rec in _ordered(records):
        labels.setdefault(rec.backbone_digest, (rec.backbone_name, rec.pretrain_method))
    names = [name for name, _ in labels.values()]
    out: dict[str, tuple[str, ...]] = {}
    for digest, (name, method) in labels.items():
        shown = f"{name} [{digest[:8]}]" if names.count(name) > 1 else name
        out[digest] = (shown, method)
    return out


def build_report_table(records: Sequence[EvalRecord], *, all_datasets: bool = False) -> ReportTable:
    """Backbones (rows) x datasets (columns) of the primary metric, best per column marked.

    Only records at scale 1 count (other scales are :func:`saip_bench.report.scales.build_scale_table`'s).
    When some dataset was evaluated under more than one protocol, columns become dataset x protocol;
    otherwise one column per dataset, and the protocols are listed in the notes.

    Args:
        records: Evaluation records (already filtered by the caller).
        all_datasets: Show every one of the 12 datasets, also those without records.
    """
    used = list(latest(r for r in records if is_unit_scale(r)).values())
    protocols: dict[str, set[str]] = {}
    for rec in used:
        protocols.setdefault(rec.dataset, set()).add(rec.protocol)
    split = any(len(p) > 1 for p in protocols.values())

    names = set(protocols) | (set(DATASETS.names()) if all_datasets else set())
    columns: list[Column] = []
    for dataset in dataset_order(names):
        title = dataset_title(dataset)
        for protocol in protocol_order(protocols.get(dataset, ())) or [None]:
            in_col = [
                r for r in used if r.dataset == dataset and (protocol is None or r.protocol == protocol)
            ]
            metric = _metric_name(in_col, dataset)
            if split and protocol is not None and len(protocols[dataset]) > 1:
                key, shown = f"{dataset}/{protocol}", f"{title} ({protocol})"
            else:
                key, shown = dataset, title
            columns.append(Column(key=key, title=shown, metric=metric, dataset=dataset, protocol=protocol))

    rows = [
        Row(key=digest, labels=labels, values={})
        for digest, labels in backbone_rows([r for r in records if is_unit_scale(r)]).items()
    ]
    by_digest = {row.key: row for row in rows}
    for rec in used:
        column = next(c for c in columns if c.dataset == rec.dataset and c.protocol == rec.protocol)
        by_digest[rec.backbone_digest].values[column.key] = rec.primary_value
    for column in columns:
        mark_best([(row, column.key) for row in rows], column.metric)

    notes: list[str] = []
    if not split and used:
        per_protocol: dict[str, list[str]] = {}
        for dataset in dataset_order(protocols):
            for protocol in protocols[dataset]:
                per_protocol.setdefault(protocol, []).append(dataset_title(dataset))
        notes.append(
            "protocol: "
            + "; ".join(f"{p} ({', '.join(per_protocol[p])})" for p in protocol_order(per_protocol))
        )
    notes.append("latest run per backbone x dataset x protocol; best per column in bold")
    budgets = sorted({r.budget for r in used})
    if budgets:
        notes.append("budget: " + ", ".join(budgets))
    return ReportTable(
        title="saip-bench results (primary metric)",
        label_headers=("Backbone", "Pretraining"),
        columns=columns,
        rows=rows,
        notes=notes,
    )


def _metric_name(records: Sequence[EvalRecord], dataset: str) -> str:
    names = sorted({r.primary_metric for r in records})
    if names:
        return "/".join(names)
    return DATASETS.get(dataset).primary_metric if dataset in DATASETS else ""


def mark_best(cells: Sequence[tuple[Row, str]], metric: str) -> None:
    """Mark the best value among ``cells`` (ties all marked); nothing when fewer than two values exist."""
    present = [(row, key, v) for row, key in cells if (v := row.value(key)) is not None]
    if len(present) < 2:
        return
    pick = min if metric in LOWER_IS_BETTER else max
    best = pick(v for _, _, v in present)
    for row, key, value in present:
        if value == best:
            row.best.add(key)


def _ordered(records: Iterable[EvalRecord]) -> list[EvalRecord]:
    # Stored records sort by id; unstored ones (id None) keep their given order after them.
    indexed = list(enumerate(records))
    indexed.sort(key=lambda item: (item[1].id is None, item[1].id or 0, item[0]))
    return [rec for _, rec in indexed]
