"""Which metric a report shows: the primary one, a named one, or one per task or dataset (``reid:R1``).

A *choice* is what ``saip report --metric`` takes: a metric name for every record, or ``PREFIX:NAME`` where
PREFIX is a task or dataset name (NAME for those records, the primary metric for the others); several
choices combine, a scoped one winning over a plain name.
"""

from __future__ import annotations

from collections.abc import Sequence

from saip_bench.datasets import DATASETS
from saip_bench.errors import SaipError
from saip_bench.results.record import EvalRecord

#: Metrics where smaller is better (CrowdHuman's log-average miss rate, stored as ``"MR-2"`` by
#: ``tasks/detection/metrics.py``); every other one is "higher is better".
LOWER_IS_BETTER: frozenset[str] = frozenset({"MR-2", "MR^-2", "MR", "mMR", "miss_rate"})


def is_lower_better(metric: str) -> bool:
    """Whether the smallest value of ``metric`` is the best (every part of a ``"/"``-joined name)."""
    parts = [p for p in metric.split("/") if p]
    return bool(parts) and all(p in LOWER_IS_BETTER for p in parts)


def metric_value(record: EvalRecord, metric: str | Sequence[str] | None = None) -> float | None:
    """The value of ``metric`` in ``record``; None when the record has no such metric.

    Args:
        record: The record.
        metric: None for the record's primary metric; a metric name (``"MR-2"``); ``"PREFIX:NAME"`` where
            PREFIX is a task or dataset name (``"reid:R1"``, ``"crowdhuman:JI"``): NAME for that task's or
            dataset's records, the primary metric for the others; or several of these (a scoped choice wins
            over a plain name).
    """
    name = metric_name(record, metric)
    if name == record.primary_metric and name not in record.metrics:
        return float(record.primary_value)
    value = record.metrics.get(name)
    return None if value is None else float(value)


def metric_name(record: EvalRecord, metric: str | Sequence[str] | None = None) -> str:
    """The name of the metric ``metric`` (see :func:`metric_value`) picks for ``record``."""
    return chosen_metric(record.task, record.dataset, record.primary_metric, metric)


def chosen_metric(task: str, dataset: str, primary: str, metric: str | Sequence[str] | None) -> str:
    """The metric choice ``metric`` (see :func:`metric_value`) for a dataset of ``task`` whose primary
    metric is ``primary``."""
    choices = [metric] if isinstance(metric, str) else list(metric or [])
    plain = None
    for choice in choices:
        prefix, sep, name = choice.partition(":")
        if sep and prefix in scopes():
            if prefix in (task, dataset):
                return name
        elif plain is None:
            plain = choice
    return plain if plain is not None else primary


def scopes() -> set[str]:
    """Every task and dataset name a ``PREFIX:NAME`` choice may start with."""
    return {spec.task for _, spec in DATASETS.items()} | set(DATASETS.names())


def recorded_metrics(records: Sequence[EvalRecord]) -> list[str]:
    """Every metric name in ``records``: primary metrics first, then the others in order of appearance."""
    names: list[str] = []
    for rec in records:
        if rec.primary_metric not in names:
            names.append(rec.primary_metric)
    for rec in records:
        names += [name for name in rec.metrics if name not in names]
    return names


def check_choices(records: Sequence[EvalRecord], choices: Sequence[str]) -> None:
    """Raise :class:`SaipError` for a choice no record in ``records`` has, listing the available metrics.

    A plain name must be a metric of some record; ``PREFIX:NAME`` a metric of some record of PREFIX (which
    must have records).
    """
    for choice in choices:
        prefix, sep, name = choice.partition(":")
        scoped = bool(sep) and prefix in scopes()
        pool = [r for r in records if prefix in (r.task, r.dataset)] if scoped else list(records)
        if scoped and not pool:
            held = sorted({r.task for r in records} | {r.dataset for r in records})
            raise SaipError(f"--metric {choice}: no records of {prefix!r}; records hold {', '.join(held)}")
        wanted = name if scoped else choice
        available = recorded_metrics(pool)
        if wanted not in available:
            where = f"{prefix} records" if scoped else "records"
            raise SaipError(
                f"--metric {choice}: no record has metric {wanted!r}; {where} have: {', '.join(available)}"
            )
