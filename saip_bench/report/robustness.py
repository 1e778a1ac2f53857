"""The scale probe's robustness figure and how its records split into probe modes.

R (:func:`robustness`) is how much of its scale-1 result a model keeps at the other input scales: the mean
over scales s != 1 of m(s) / m(1), in percent (m(1) / m(s) for a lower-is-better metric), so 100 means no
loss and lower is worse. :func:`probe_groups` keeps the two ways of probing apart: one model trained at x1 and
evaluated at every scale, or a model trained at each scale (and ``frozen``, which trains nothing). The scale
table (:mod:`saip_bench.report.scales`) shows both.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence

from saip_bench.report.table import Cell, metric_value
from saip_bench.results.record import EvalRecord

__all__ = [
    "PROBE_LABELS",
    "PROBE_MEANINGS",
    "UNTRAINED_PROTOCOLS",
    "probe_groups",
    "robustness",
    "robustness_spread",
    "spread_withheld",
    "train_scale",
]

#: The ``Probe`` label of a row: one model trained at x1 for every scale, a model per scale, no model at all.
PROBE_LABELS = {"once": "trained x1", "per_scale": "per scale", "untrained": "no training"}
#: What each probe label means, for the table's notes.
PROBE_MEANINGS = {
    "trained x1": "one model trained at x1, evaluated at each scale",
    "per scale": "a model trained at each scale",
    "no training": "frozen features at each scale",
}
#: Protocols that train nothing: their records at every scale come from the same (pretrained) weights.
UNTRAINED_PROTOCOLS = frozenset({"frozen"})
#: How close to 1 a scale must be to count as the recipe's own size.
SCALE_ONE_EPS = 1e-9
#: A seed whose ratio denominator (m(x1), or m(xS) for a lower-is-better metric) is below this share of the
#: seeds' mean denominator makes the per-seed ratios meaningless (one near-zero m(x1) gave "122 ± 2405"):
#: :func:`robustness_spread` then gives no spread.
MIN_DENOMINATOR_SHARE = 0.5


def train_scale(record: EvalRecord) -> float:
    """The input-size multiple ``record``'s model was trained at (records without one: their own scale)."""
    return float(record.scale if record.train_scale is None else record.train_scale)


def robustness(values_by_scale: Mapping[float, float], *, lower_is_better: bool = False) -> float | None:
    """The robustness figure R: the mean over scales s != 1 of m(s) / m(1), in percent.

    For a lower-is-better metric each ratio is m(1) / m(s) instead, so 100 always means "as good as at the
    recipe's own size" and less means worse. NaN values count as missing.

    Args:
        values_by_scale: A metric by input scale (1.0 = the recipe's size).
        lower_is_better: Whether the metric's smallest value is the best (:func:`is_lower_better`).

    Returns:
        R in percent; None when there is no value at scale 1 or none at another scale, or a ratio is not
        defined (a zero denominator, a negative value).
    """
    finite = {float(s): float(v) for s, v in values_by_scale.items() if not math.isnan(v)}
    reference = [v for s, v in finite.items() if abs(s - 1.0) < SCALE_ONE_EPS]
    others = [v for s, v in finite.items() if abs(s - 1.0) >= SCALE_ONE_EPS]
    if not reference or not others or min(reference[0], *others) < 0:
        return None
    pairs = [(reference[0], v) if lower_is_better else (v, reference[0]) for v in others]
    if any(den == 0 for _, den in pairs):
        return None
    return 100.0 * statistics.fmean(num / den for num, den in pairs)


def _per_seed_values(
    cells: Mapping[float, Cell], metric: str | Sequence[str] | None
) -> dict[int, dict[float, float]] | None:
    """Each seed's metric by scale, when every cell holds the same seeds; None otherwise."""
    if len({cell.seeds for cell in cells.values()}) != 1:
        return None
    return {
        seed: {
            scale: float(metric_value(rec, metric))  # type: ignore[arg-type]
            for scale, cell in cells.items()
            for rec in cell.records
            if rec.seed == seed
        }
        for seed in next(iter(cells.values())).seeds
    }


def spread_withheld(
    cells: Mapping[float, Cell], *, metric: str | Sequence[str] | None = None, lower_is_better: bool = False
) -> bool:
    """Whether a seed's ratio denominator is under :data:`MIN_DENOMINATOR_SHARE` of the seeds' mean one.

    The denominator is m(x1), or m(xS) at each other scale for a lower-is-better metric. Such a seed's own
    R is dominated by its small denominator, so a std over seeds of per-seed R says nothing.
    """
    per_seed = _per_seed_values(cells, metric)
    return per_seed is not None and _small_denominator(per_seed, lower_is_better)


def _small_denominator(per_seed: Mapping[int, Mapping[float, float]], lower_is_better: bool) -> bool:
    """:func:`spread_withheld` on each seed's metric by scale."""
    if len(per_seed) < 2:
        return False
    scales = {scale for by_scale in per_seed.values() for scale in by_scale}
    for scale in scales:
        if (abs(scale - 1.0) < SCALE_ONE_EPS) == lower_is_better:
            continue  # not a denominator
        values = [by[scale] for by in per_seed.values() if scale in by and not math.isnan(by[scale])]
        mean = statistics.fmean(values) if values else 0.0
        if mean > 0 and min(values) < MIN_DENOMINATOR_SHARE * mean:
            return True
    return False


def robustness_spread(
    cells: Mapping[float, Cell], *, metric: str | Sequence[str] | None = None, lower_is_better: bool = False
) -> tuple[float, int] | None:
    """(sample std, n) over seeds of each seed's own :func:`robustness`, from the cells of one row by scale.

    Only when every cell holds the same seeds (every seed has every scale), each seed's R is defined and no
    seed's denominator is small (:func:`spread_withheld`); None otherwise: there is then no honest spread.
    One seed gives ``(0.0, 1)``.
    """
    per_seed = _per_seed_values(cells, metric)
    if per_seed is None or _small_denominator(per_seed, lower_is_better):
        return None
    ratios = []
    for values in per_seed.values():
        value = robustness(values, lower_is_better=lower_is_better)
        if value is None:
            return None
        ratios.append(value)
    return (statistics.stdev(ratios) if len(ratios) > 1 else 0.0, len(ratios))


def probe_groups(records: Sequence[EvalRecord]) -> dict[str, list[EvalRecord]]:
    """The records of each probe mode, in the given order.

    ``"once"``: the records of a model trained at x1 and evaluated at another scale, with every record at
    scale 1 as their reference. ``"per_scale"``: records whose model was trained at the evaluated size
    (scale 1 included; frozen ones too). ``"other"``: a model trained at neither x1 nor the evaluated size
    (no command writes such records; the table leaves them out and says so).
    """
    groups: dict[str, list[EvalRecord]] = {"once": [], "per_scale": [], "other": []}
    for rec in records:
        trained, unit = train_scale(rec), abs(rec.scale - 1.0) < SCALE_ONE_EPS
        if abs(trained - rec.scale) < SCALE_ONE_EPS:
            groups["per_scale"].append(rec)
            if unit:
                groups["once"].append(rec)
        elif abs(trained - 1.0) < SCALE_ONE_EPS:
            groups["once"].append(rec)
        else:
            groups["other"].append(rec)
    return groups
