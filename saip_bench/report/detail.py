"""One dataset in full: backbones (rows) x every metric its records hold (columns), mean ± std over seeds.

``saip report --dataset crowdhuman`` shows this instead of the one-column main table: CrowdHuman's AP, MR-2
and JI; re-ID's R1/R5/R10/mAP/mINP; COCO's AP, AP50, AP75 and per-part AP; parsing's mIoU, aAcc and
per-class IoU: whatever the task computed and stored. The primary metric comes first, the others in the
order the records hold them (the store returns them sorted by name).
"""

from __future__ import annotations

from collections.abc import Sequence

from saip_bench.report.metrics import recorded_metrics
from saip_bench.report.table import (
    Column,
    ReportTable,
    Row,
    aggregate,
    backbone_rows,
    best_note,
    budget_note,
    dataset_title,
    is_unit_scale,
    mark_best,
    protocol_order,
    provenance_notes,
    seed_notes,
)
from saip_bench.results.record import EvalRecord


def build_detail_table(
    records: Sequence[EvalRecord],
    dataset: str,
    *,
    metrics: Sequence[str] | None = None,
    seeds: str = "all",
) -> ReportTable:
    """Backbones x metrics of ``dataset`` at input scale 1; columns split by protocol when it has several.

    Args:
        records: Evaluation records; only those of ``dataset`` at scale 1 are used.
        dataset: The dataset's name.
        metrics: Only these metric names (in this order); by default every recorded one.
        seeds: How seeds aggregate (:func:`saip_bench.report.table.aggregate`).
    """
    used = [r for r in records if r.dataset == dataset and is_unit_scale(r)]
    names = list(metrics) if metrics is not None else recorded_metrics(used)
    protocols = protocol_order({r.protocol for r in used})
    split = len(protocols) > 1
    rows = [Row(key=digest, labels=labels, values={}) for digest, labels in backbone_rows(used).items()]
    by_digest = {row.key: row for row in rows}
    columns: list[Column] = []
    for protocol in protocols:
        for name in names:
            cells = aggregate([r for r in used if r.protocol == protocol], metric=name, seeds=seeds)
            if not cells:
                continue
            key = f"{protocol}/{name}" if split else name
            title = f"{name} ({protocol})" if split else name
            columns.append(Column(key=key, title=title, metric=name, dataset=dataset, protocol=protocol))
            for (digest, *_), cell in cells.items():
                by_digest[digest].put(key, cell)
    close = [c for c in columns if mark_best([(row, c.key) for row in rows], c.metric)]
    notes = [f"protocol: {', '.join(protocols)}"] if protocols and not split else []
    budgets = budget_note(rows, columns)
    notes += [*seed_notes(rows, seeds), best_note(columns, close), *budgets[:1], *provenance_notes(rows)]
    title = f"{dataset_title(dataset)}: every recorded metric"
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
