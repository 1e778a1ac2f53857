"""Fixtures of the report tests: records built in memory, ids assigned as a store would."""

from __future__ import annotations

import pytest

from saip_bench.results import EvalRecord

_TASK = {
    "market1501": "reid",
    "msmt17": "reid",
    "pa100k": "attribute",
    "peta_zs": "attribute",
    "lip": "parsing",
}
_METRIC = {"market1501": "mAP", "msmt17": "mAP", "pa100k": "mA", "peta_zs": "mA", "lip": "mIoU"}


def make(backbone: str, dataset: str, value: float, **overrides: object) -> EvalRecord:
    """A record of ``backbone`` on ``dataset`` with primary value ``value``."""
    fields: dict[str, object] = dict(
        backbone_digest=f"{backbone}-digest-0123456789",
        backbone_name=backbone,
        pretrain_method=backbone.split("_")[0],
        task=_TASK.get(dataset, "reid"),
        dataset=dataset,
        protocol="frozen",
        budget="smoke",
        metrics={_METRIC.get(dataset, "mAP"): value},
        primary_metric=_METRIC.get(dataset, "mAP"),
        primary_value=value,
        config_digest="cfg",
        seed=0,
        package_version="0.1.0",
        git_revision=None,
        duration_s=1.0,
        started_at="2026-11-26T17:00:00+00:00",
        ended_at="2026-11-26T17:00:01+00:00",
    )
    fields.update(overrides)
    return EvalRecord(**fields)  # type: ignore[arg-type]


def numbered(records: list[EvalRecord]) -> list[EvalRecord]:
    for i, rec in enumerate(records, start=1):
        rec.id = i
    return records


@pytest.fixture
def sample_records() -> list[EvalRecord]:
    """Three backbones on three datasets, one missing cell, one superseded record, two scale probes."""
    return numbered(
        [
            make("saip_tiny", "pa100k", 70.123),
            make("random_tiny", "market1501", 2.5),
            make("saip_tiny", "market1501", 10.0),  # superseded by the later record below
            make("saip_tiny", "market1501", 41.257),
            make("mae_tiny", "market1501", 35.5),
            make("mae_tiny", "pa100k", 72.004),
            make("random_tiny", "pa100k", 55.0),
            make("saip_tiny", "lip", 33.3333),
            make("saip_tiny", "market1501", 30.0, scale=0.5),
            make("saip_tiny", "market1501", 38.0, scale=1.5),
        ]
    )


@pytest.fixture(name="make")
def make_fixture():
    """The :func:`make` record builder (importlib import mode: tests cannot import conftest)."""
    return make


@pytest.fixture(name="numbered")
def numbered_fixture():
    return numbered


#: ``seeded_records``' means at scale 1 (random_tiny has no LIP result); seeds add -0.5, 0, +0.5.
SEEDED_MEANS = {
    "saip_tiny": {"market1501": 81.0, "msmt17": 52.0, "pa100k": 80.0, "peta_zs": 70.0, "lip": 48.0},
    "mae_tiny": {"market1501": 76.0, "msmt17": 45.0, "pa100k": 79.0, "peta_zs": 68.0, "lip": 46.0},
    "random_tiny": {"market1501": 12.0, "msmt17": 3.0, "pa100k": 62.0, "peta_zs": 55.0},
}
#: Scales ``seeded_records`` probes on Market-1501 and PA-100K (the mean drops by 10 per 0.5 off 1).
SEEDED_SCALES = (0.5, 1.0, 1.5)


@pytest.fixture
def seeded_records() -> list[EvalRecord]:
    """3 backbones x 5 datasets x 3 seeds (one cell missing), Market-1501 and PA-100K also at 0.5 and 1.5.

    Every cell's seeds are mean - 0.5, mean, mean + 0.5: mean exact, sample std 0.5, n 3.
    """
    records = []
    for backbone, means in SEEDED_MEANS.items():
        for dataset, mean in means.items():
            scales = SEEDED_SCALES if dataset in ("market1501", "pa100k") else (1.0,)
            for scale in scales:
                for seed in range(3):
                    value = mean - 20 * abs(scale - 1.0) + 0.5 * (seed - 1)
                    records.append(make(backbone, dataset, value, seed=seed, scale=scale))
    return numbered(records)


@pytest.fixture(name="seeded_means")
def seeded_means_fixture():
    """:data:`SEEDED_MEANS`."""
    return SEEDED_MEANS
