"""The report's table model: plain rows and columns built from evaluation records, no rendering, no pandas.

Exporters (:mod:`saip_bench.report.export`) and plots render a :class:`ReportTable`; builders here decide
which records go where. A *cell* is one backbone x dataset x protocol x input scale; :func:`aggregate` turns
its records into a :class:`Cell`: the mean, sample standard deviation and count over seeds (the latest record
of each seed), of the primary metric or a chosen one. Datasets come in the paper's order, the best mean per
column is marked (ties all marked; the smallest for :data:`LOWER_IS_BETTER` metrics).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from saip_bench.datasets import DATASETS
from saip_bench.errors import SaipError
from saip_bench.io import random_init_digest
from saip_bench.report.metrics import (  # noqa: F401 (re-exported: the table's vocabulary)
    LOWER_IS_BETTER,
    chosen_metric,
    is_lower_better,
    metric_name,
    metric_value,
)
from saip_bench.results.record import EvalRecord

#: ``aggregate``'s ``seeds`` modes: ``"all"`` averages the latest record of every seed, ``"latest"`` keeps
#: only the cell's single latest record (what reports showed before seeds were aggregated).
SEED_MODES: tuple[str, ...] = ("all", "latest")
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
    #: Decimals this column always shows (a scale table's robustness in percent); None: the table's.
    digits: int | None = None


@dataclass(frozen=True)
class Cell:
    """One backbone x dataset x protocol x scale, aggregated over seeds.

    Attributes:
        mean: Mean of the chosen metric over the cell's records.
        std: Sample standard deviation (ddof=1); 0.0 when ``n == 1``, which says nothing about the spread.
        n: Number of records averaged (one per seed with ``seeds="all"``).
        seeds: Their seeds, ascending.
        records: The records averaged, oldest first: the provenance of the cell.
        metric: The metric's name (``"/"``-joined when the records disagree).
    """

    mean: float
    std: float
    n: int
    seeds: tuple[int, ...]
    records: tuple[EvalRecord, ...]
    metric: str = ""


@dataclass
class Row:
    """One table row: label cells (backbone, method, ...), values by column key, best-marked keys.

    ``values`` holds each cell's mean, ``spread`` its (standard deviation, number of seeds) and ``cells`` the
    whole :class:`Cell` (records included) where the builder had one; the exporters read all three.
    """

    key: str
    labels: tuple[str, ...]
    values: dict[str, float | None]
    best: set[str] = field(default_factory=set)
    spread: dict[str, tuple[float, int]] = field(default_factory=dict)
    cells: dict[str, Cell] = field(default_factory=dict)

    def put(self, key: str, cell: Cell) -> None:
        """Fill column ``key`` from ``cell``: its mean, spread and records."""
        self.values[key] = cell.mean
        self.spread[key] = (cell.std, cell.n)
        self.cells[key] = cell

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
    #: Keys of the columns whose best mean is within one standard deviation of the runner-up.
    unseparated: list[str] = field(default_factory=list)

    @property
    def is_empty(self) -> bool:
        return not self.rows

    def all_values(self) -> list[float]:
        """Every present value, for choosing a display precision (columns with their own digits aside)."""
        columns = [col for col in self.columns if col.digits is None]
        return [v for row in self.rows for col in columns if (v := row.value(col)) is not None]


def row_key(record: EvalRecord) -> str:
    """The table row ``record`` belongs to: its backbone digest, except that the records of a ``random:NAME``
    (without ``@SEED``) are one row, keyed by the digest of its seed-0 init, whatever their seeds.

    Such a backbone is initialised with the run's seed (:func:`saip_bench.backbones.load_backbone`), so its
    records of seeds 0, 1, 2 carry three digests, one per init; they are the one untrained reference row, its
    spread over seeds that of the init and the probe together. ``random:NAME@SEED`` (one init for every seed)
    keeps its own row.
    """
    name = record.backbone_name
    if record.pretrain_method == "random" and name.startswith("random:") and "@" not in name:
        return random_init_digest(name, 0)
    return record.backbone_digest


def cell_key(record: EvalRecord) -> tuple[str, str, str, float]:
    """(row key, dataset, protocol, scale rounded to 9 decimals): what one cell aggregates (:func:`row_key`:
    the backbone digest, one for every init seed of a ``random:NAME``)."""
    return (row_key(record), record.dataset, record.protocol, round(record.scale, 9))


def aggregate(
    records: Sequence[EvalRecord], *, metric: str | Sequence[str] | None = None, seeds: str = "all"
) -> dict[tuple, Cell]:
    """Records grouped into cells (:func:`cell_key`), each the mean, std and count over its seeds.

    Which records a cell averages: those that have the chosen metric; of those, only the ones of the budget
    of the latest one (a rerun at ``full`` budget supersedes ``smoke`` results, never mixes with them); with
    ``seeds="all"`` the latest record of each seed, with ``seeds="latest"`` the single latest record. "Latest"
    is the highest store id, else the given order. A NaN result counts as missing: a cell whose chosen
    records are all NaN is left out.

    Args:
        records: Evaluation records (already filtered by the caller).
        metric: What to average: None for each record's primary metric, or a choice of
            :func:`metric_value`.
        seeds: One of :data:`SEED_MODES`.

    Returns:
        ``{(row_key, dataset, protocol, round(scale, 9)): Cell}``, in order of each cell's first record.
    """
    if seeds not in SEED_MODES:
        raise SaipError(f"unknown seeds mode {seeds!r}; valid modes: {', '.join(SEED_MODES)}")
    groups: dict[tuple, list[EvalRecord]] = {}
    for rec in _ordered(records):
        if metric_value(rec, metric) is not None:
            groups.setdefault(cell_key(rec), []).append(rec)
    out: dict[tuple, Cell] = {}
    for key, recs in groups.items():
        budget = recs[-1].budget
        recs = [r for r in recs if r.budget == budget]
        if seeds == "latest":
            chosen = recs[-1:]
        else:
            per_seed = {rec.seed: rec for rec in recs}  # later records overwrite earlier ones
            chosen = [rec for rec in recs if per_seed[rec.seed] is rec]
        pairs = [(rec, float(metric_value(rec, metric))) for rec in chosen]  # type: ignore[arg-type]
        pairs = [(rec, v) for rec, v in pairs if not math.isnan(v)]
        if not pairs:
            continue
        values = [v for _, v in pairs]
        out[key] = Cell(
            mean=statistics.fmean(values),
            std=statistics.stdev(values) if len(values) > 1 else 0.0,
            n=len(values),
            seeds=tuple(sorted(rec.seed for rec, _ in pairs)),
            records=tuple(rec for rec, _ in pairs),
            metric="/".join(sorted({metric_name(rec, metric) for rec, _ in pairs})),
        )
    return out


def is_unit_scale(record: EvalRecord) -> bool:
    """Whether ``record`` was evaluated at the recipe's own input size."""
    return abs(record.scale - 1.0) < _SCALE_ONE_EPS


def latest(records: Iterable[EvalRecord]) -> dict[tuple, EvalRecord]:
    """The latest record per backbone x dataset x protocol x scale (highest id; else given order)."""
    out: dict[tuple, EvalRecord] = {}
    for rec in _ordered(records):
        out[cell_key(rec)] = rec
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
    """Row labels (name, method) per row key (:func:`row_key`: the backbone digest), in order of first
    appearance.

    Two different weights with the same name get their digest's first 8 characters appended, so rows
    never look identical.
    """
    labels: dict[str, tuple[str, str]] = {}
    for rec in _ordered(records):
        labels.setdefault(row_key(rec), (rec.backbone_name, rec.pretrain_method))
    names = [name for name, _ in labels.values()]
    out: dict[str, tuple[str, ...]] = {}
    for digest, (name, method) in labels.items():
        shown = f"{name} [{digest[:8]}]" if names.count(name) > 1 else name
        out[digest] = (shown, method)
    return out


def build_report_table(
    records: Sequence[EvalRecord],
    *,
    all_datasets: bool = False,
    metric: str | Sequence[str] | None = None,
    seeds: str = "all",
) -> ReportTable:
    """Backbones (rows) x datasets (columns): the mean of a metric over seeds, best mean per column marked.

    Only records at scale 1 count (other scales are :func:`saip_bench.report.scales.build_scale_table`'s).
    When some dataset was evaluated under more than one protocol, its columns become dataset x protocol;
    the notes list every protocol with its datasets.

    Args:
        records: Evaluation records (already filtered by the caller).
        all_datasets: Show every one of the 12 datasets, also those without records.
        metric: What the columns show: None for the primary metric, else a choice of :func:`metric_value`;
            a dataset without the metric has no column (unless ``all_datasets``).
        seeds: One of :data:`SEED_MODES` (see :func:`aggregate`).
    """
    unit = [r for r in records if is_unit_scale(r)]
    cells = aggregate(unit, metric=metric, seeds=seeds)
    protocols: dict[str, set[str]] = {}
    for _, dataset, protocol, _ in cells:
        protocols.setdefault(dataset, set()).add(protocol)
    split = any(len(p) > 1 for p in protocols.values())

    names = set(protocols) | (set(DATASETS.names()) if all_datasets else set())
    columns: list[Column] = []
    for dataset in dataset_order(names):
        title = dataset_title(dataset)
        for protocol in protocol_order(protocols.get(dataset, ())) or [None]:
            in_col = [c for (_, ds, p, _), c in cells.items() if ds == dataset and protocol in (None, p)]
            shown = _column_metric(in_col, dataset, metric)
            if split and protocol is not None and len(protocols[dataset]) > 1:
                key, head = f"{dataset}/{protocol}", f"{title} ({protocol})"
            else:
                key, head = dataset, title
            columns.append(Column(key=key, title=head, metric=shown, dataset=dataset, protocol=protocol))

    rows = [Row(key=digest, labels=labels, values={}) for digest, labels in backbone_rows(unit).items()]
    by_digest = {row.key: row for row in rows}
    for (digest, dataset, protocol, _), cell in cells.items():
        column = next(c for c in columns if c.dataset == dataset and c.protocol == protocol)
        by_digest[digest].put(column.key, cell)
    # A backbone with records only in datasets the columns leave out (no such metric) has no row.
    shown = {c.dataset for c in columns}
    kept = {row_key(r) for r in unit if r.dataset in shown}
    rows = [row for row in rows if row.key in kept or all_datasets]
    close = [c for c in columns if mark_best([(row, c.key) for row in rows], c.metric)]

    notes: list[str] = []
    if cells:
        per_protocol: dict[str, list[str]] = {}
        for dataset in dataset_order(protocols):
            for protocol in protocols[dataset]:
                per_protocol.setdefault(protocol, []).append(dataset_title(dataset))
        notes.append(
            "protocol: "
            + "; ".join(f"{p} ({', '.join(per_protocol[p])})" for p in protocol_order(per_protocol))
        )
    budgets = budget_note(rows, columns)
    notes += [*seed_notes(rows, seeds), best_note(columns, close), *budgets[:1], *provenance_notes(rows)]
    what = "primary metric" if metric is None else f"metric {_choice_text(metric)}"
    title = f"saip-bench results ({what})"
    if budgets[1:]:
        title += ", " + budgets[1]
    return ReportTable(
        title=title,
        label_headers=("Backbone", "Pretraining"),
        columns=columns,
        rows=rows,
        notes=[n for n in notes if n],
        unseparated=[c.key for c in close],
    )


def seed_notes(rows: Sequence[Row], seeds: str = "all") -> list[str]:
    """How the cells aggregate their seeds, and which ones rest on a single seed."""
    counts = [n for row in rows for _, n in row.spread.values()]
    if not counts:
        return []
    if seeds == "latest":
        return ["latest run per cell (--seeds latest): seeds are not averaged"]
    if max(counts) == 1:
        return ["one seed per cell (n = 1): no spread"]
    head = "mean ± sample std over seeds (n), the latest run of each seed"
    if min(counts) == 1:
        return [head, "(1) = a single seed: no spread"]
    return [head]


def best_note(columns: Sequence[Column], close: Sequence[Column] = ()) -> str:
    """The legend of the best-marks: bold = best mean, ↓ = lower is better, and unseparated columns."""
    text = "best mean per column in bold"
    if any(is_lower_better(c.metric) for c in columns):
        text += "; ↓ = lower is better (the smallest is best)"
    if close:
        text += "; best within one std of the runner-up in " + ", ".join(c.title for c in close)
    return text


def budget_note(rows: Sequence[Row], columns: Sequence[Column]) -> list[str]:
    """``["budget: smoke"]``; for a table of several budgets the exceptions to the most common one and
    ``"mixed budgets"`` (for the title); ``[]`` when no row has cells.

    A cell holds one budget (:func:`aggregate`), so a table mixes budgets only across cells:
    ``"mixed budgets: short, except full for saip_tiny (CrowdHuman)"``.
    """
    titles = {c.key: c.title for c in columns}
    budgets: dict[str, list[tuple[Row, str]]] = {}
    for row in rows:
        for key, cell in row.cells.items():
            for budget in sorted({rec.budget for rec in cell.records}):
                budgets.setdefault(budget, []).append((row, key))
    if not budgets:
        return []
    if len(budgets) == 1:
        return [f"budget: {next(iter(budgets))}"]
    main = max(sorted(budgets), key=lambda b: len(budgets[b]))
    parts = []
    for budget in sorted(set(budgets) - {main}):
        per_row: dict[int, list[str]] = {}
        for row, key in budgets[budget]:
            per_row.setdefault(id(row), []).append(key)
        shown = []
        for row in rows:
            keys = per_row.get(id(row))
            if keys:
                every = set(keys) == set(row.cells)
                shown.append(
                    f"{row.labels[0]} ({'all' if every else ', '.join(titles.get(k, k) for k in keys)})"
                )
        parts.append(f"{budget} for {'; '.join(shown)}")
    return [f"mixed budgets: {main}, except " + "; ".join(parts), "mixed budgets"]


def provenance_notes(rows: Sequence[Row]) -> list[str]:
    """The code behind the cells: package versions and git revisions (per cell: CSV, JSON, ``--records``)."""
    records = [rec for row in rows for cell in row.cells.values() for rec in cell.records]
    if not records:
        return []
    versions = sorted({r.package_version for r in records})
    revisions = sorted({(r.git_revision or "none")[:12] for r in records})
    return [f"code: saip-bench {', '.join(versions)}; git {', '.join(revisions)}"]


def _choice_text(metric: str | Sequence[str]) -> str:
    return metric if isinstance(metric, str) else ", ".join(metric)


def _column_metric(cells: Sequence[Cell], dataset: str, metric: str | Sequence[str] | None) -> str:
    names = sorted({part for c in cells for part in c.metric.split("/")})
    if names:
        return "/".join(names)
    if dataset not in DATASETS:
        return ""
    spec = DATASETS.get(dataset)
    return chosen_metric(spec.task, dataset, spec.primary_metric, metric)


def mark_best(cells: Sequence[tuple[Row, str]], metric: str) -> bool:
    """Mark the best value among ``cells`` (ties all marked); nothing when fewer than two values exist.

    The smallest is best for :data:`LOWER_IS_BETTER` metrics. Returns whether the best is within one
    standard deviation (the larger of the best's and the runner-up's, from ``Row.spread`` with n > 1) of
    the runner-up: a difference the seeds do not separate.
    """
    present = [(row, key, v) for row, key in cells if (v := row.value(key)) is not None]
    if len(present) < 2:
        return False
    pick = min if is_lower_better(metric) else max
    best = pick(v for _, _, v in present)
    for row, key, value in present:
        if _tied(value, best):
            row.best.add(key)
    others = [v for _, _, v in present if not _tied(v, best)]
    if not others:
        return False
    runner_up = pick(others)
    stds = [
        std
        for row, key, v in present
        if _tied(v, best) or _tied(v, runner_up)
        for std, n in [row.spread.get(key, (0.0, 1))]
        if n > 1
    ]
    return abs(best - runner_up) <= max(stds, default=0.0) and bool(stds)


def _tied(a: float, b: float) -> bool:
    # Means of the same numbers summed in another order differ in the last bits; those are ties.
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def _ordered(records: Iterable[EvalRecord]) -> list[EvalRecord]:
    # Stored records sort by id; unstored ones (id None) keep their given order after them.
    indexed = list(enumerate(records))
    indexed.sort(key=lambda item: (item[1].id is None, item[1].id or 0, item[0]))
    return [rec for _, rec in indexed]
