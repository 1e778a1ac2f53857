"""Fixtures of the results-store tests."""

from __future__ import annotations

import pytest

from saip_bench.results import EvalRecord


def make_record(**overrides: object) -> EvalRecord:
    """A complete, plausible record; tests override the fields they care about."""
    fields: dict[str, object] = dict(
        backbone_digest="a1b2c3d4e5f60718",
        backbone_name="saip_vit_tiny",
        pretrain_method="saip",
        task="reid",
        dataset="market1501",
        protocol="frozen",
        budget="smoke",
        metrics={"mAP": 41.25, "R1": 60.5},
        primary_metric="mAP",
        primary_value=41.25,
        config_digest="cfg0001",
        seed=0,
        package_version="0.1.0",
        git_revision="abc123",
        duration_s=1.5,
        started_at="2026-11-26T17:00:00+00:00",
        ended_at="2026-11-26T17:00:02+00:00",
    )
    fields.update(overrides)
    return EvalRecord(**fields)  # type: ignore[arg-type]


@pytest.fixture
def record_factory():
    return make_record
