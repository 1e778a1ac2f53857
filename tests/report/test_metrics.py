"""Every metric: ``--metric`` choices, the one-dataset detail view, every metric in CSV and JSON, MR-2 ranked
lower-is-better."""

from __future__ import annotations

import csv
import io
import json

import pytest

from saip_bench.errors import SaipError
from saip_bench.report import build_report_table, to_csv, to_json, to_latex, to_markdown
from saip_bench.report.detail import build_detail_table
from saip_bench.report.metrics import check_choices, is_lower_better, metric_value, recorded_metrics

#: CrowdHuman's three metrics as tasks/detection/metrics.py stores them (percent; MR-2 lower is better).
CROWDHUMAN = {
    "saip_tiny": (45.5, 60.25, 50.75),
    "mae_tiny": (47.0, 70.5, 52.0),
    "random_tiny": (3.0, 99.0, 5.0),
}


@pytest.fixture
def crowd(make, numbered):
    records = [
        make(
            name,
            "crowdhuman",
            ap,
            task="detection",
            primary_metric="AP",
            metrics={"AP": ap, "MR-2": mr, "JI": ji},
        )
        for name, (ap, mr, ji) in CROWDHUMAN.items()
    ]
    reid = [
        make(name, "market1501", 30.0 + i, metrics={"mAP": 30.0 + i, "R1": 50.0 + i, "mINP": 10.0 + i})
        for i, name in enumerate(CROWDHUMAN)
    ]
    return numbered(records + reid)


def test_lower_is_better_names_the_detection_metric():
    assert is_lower_better("MR-2") and is_lower_better("MR^-2") and not is_lower_better("AP")


def test_every_crowdhuman_metric_reaches_csv_and_json(crowd):
    table = build_report_table(crowd)  # the main table shows AP only ...
    assert [c.metric for c in table.columns] == ["mAP", "AP"]
    lines = list(csv.DictReader(io.StringIO(to_csv(table))))
    got = {(d["Backbone"], d["metric"]): float(d["mean"]) for d in lines if d["dataset"] == "crowdhuman"}
    expected = {
        (name, metric): value
        for name, values in CROWDHUMAN.items()
        for metric, value in zip(("AP", "MR-2", "JI"), values, strict=True)
    }
    assert got == expected  # ... the CSV every metric of every record
    assert {d["lower_is_better"] for d in lines if d["metric"] == "MR-2"} == {"1"}
    obj = json.loads(to_json(table))
    for row in obj["rows"]:
        name = row["labels"]["Backbone"]
        metrics = row["cells"]["crowdhuman"]["metrics"]
        assert {k: v["mean"] for k, v in metrics.items()} == dict(
            zip(("AP", "MR-2", "JI"), CROWDHUMAN[name], strict=True)
        )
    assert obj["rows"][0]["cells"]["market1501"]["metrics"]["R1"] == {"mean": 50.0, "std": 0.0, "n": 1}


def test_detail_view_has_every_metric_and_ranks_mr2_lower_is_better(crowd):
    table = build_detail_table(crowd, "crowdhuman")
    assert [c.key for c in table.columns] == ["AP", "MR-2", "JI"]  # primary first
    assert table.title == "CrowdHuman: every recorded metric"
    best = {row.labels[0]: row.best for row in table.rows}
    assert best == {"saip_tiny": {"MR-2"}, "mae_tiny": {"AP", "JI"}, "random_tiny": set()}
    md = to_markdown(table)
    assert "| Backbone | Pretraining | AP | MR-2 ↓ | JI |" in md
    assert "| saip_tiny | saip | 45.50 | **60.25** | 50.75 |" in md
    assert "↓ = lower is better" in md
    assert "MR-2 $\\downarrow$" in to_latex(table)
    assert json.loads(to_json(table))["columns"][1]["lower_is_better"] is True


def test_metric_choice_plain_and_scoped(crowd):
    r1 = build_report_table(crowd, metric="R1")  # only re-ID records have R1: CrowdHuman has no column
    assert [(c.key, c.metric) for c in r1.columns] == [("market1501", "R1")]
    assert [row.values for row in r1.rows] == [
        {"market1501": 50.0},
        {"market1501": 51.0},
        {"market1501": 52.0},
    ]
    assert r1.title == "saip-bench results (metric R1)"
    mixed = build_report_table(crowd, metric=["reid:R1", "crowdhuman:MR-2"])
    assert [c.metric for c in mixed.columns] == ["R1", "MR-2"]
    best = {row.labels[0]: row.best for row in mixed.rows}
    assert best["saip_tiny"] == {"crowdhuman"}  # 60.25: the smallest miss rate
    assert best["random_tiny"] == {"market1501"}
    assert "CrowdHuman (MR-2 ↓)" in to_markdown(mixed)
    primary = build_report_table(crowd, metric="detection:JI")  # scoped: others keep their primary metric
    assert [c.metric for c in primary.columns] == ["mAP", "JI"]


def test_metric_value_and_recorded_metrics(crowd):
    rec = crowd[0]
    assert metric_value(rec) == 45.5 and metric_value(rec, "MR-2") == 60.25
    assert metric_value(rec, "R1") is None and metric_value(rec, "reid:R1") == 45.5  # not a re-ID record
    assert recorded_metrics(crowd) == ["AP", "mAP", "MR-2", "JI", "R1", "mINP"]


@pytest.mark.parametrize(
    ("choice", "message"),
    [
        ("R5", "--metric R5: no record has metric 'R5'; records have: AP, mAP, MR-2, JI, R1, mINP"),
        ("reid:JI", "--metric reid:JI: no record has metric 'JI'; reid records have: mAP, R1, mINP"),
        ("pose:AP", "--metric pose:AP: no records of 'pose'"),
    ],
)
def test_a_metric_no_record_has_lists_the_available_ones(crowd, choice, message):
    with pytest.raises(SaipError) as err:
        check_choices(crowd, [choice])
    assert str(err.value).startswith(message)
    check_choices(crowd, ["MR-2", "reid:R1", "crowdhuman:JI"])  # these exist: no error
