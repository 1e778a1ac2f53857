"""`saip report` through the real Typer app: formats, output files, plots, filters, empty stores."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from saip_bench.cli.app import app
from saip_bench.results import EvalRecord, ResultsStore

runner = CliRunner()


def _record(backbone: str, dataset: str, value: float, **overrides: object) -> EvalRecord:
    task, metric = {
        "market1501": ("reid", "mAP"),
        "pa100k": ("attribute", "mA"),
        "fashionpedia": ("fashion", "AP"),
    }[dataset]
    fields: dict[str, object] = dict(
        backbone_digest=f"{backbone}-0123456789abcdef",
        backbone_name=backbone,
        pretrain_method=backbone.split("_")[0],
        task=task,
        dataset=dataset,
        protocol="frozen",
        budget="smoke",
        metrics={metric: value},
        primary_metric=metric,
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


@pytest.fixture
def workspace(tmp_path):
    ws = tmp_path / "ws"
    store = ResultsStore(ws / "results.sqlite")
    for rec in (
        _record("saip_tiny", "market1501", 41.257),
        _record("random_tiny", "market1501", 2.5),
        _record("saip_tiny", "pa100k", 70.5),
        _record("random_tiny", "pa100k", 71.25),
        _record("saip_tiny", "market1501", 30.0, scale=0.5),
    ):
        store.add(rec)
    return ws


def _invoke(*args: str):
    return runner.invoke(app, ["report", *args])


def test_rich_table(workspace):
    result = _invoke("--workspace", str(workspace))
    assert result.exit_code == 0, result.output
    for text in ("saip_tiny", "random_tiny", "Market-1501", "PA-100K", "41.26", "71.25", "frozen"):
        assert text in result.output


def test_markdown_to_stdout_and_filters(workspace):
    result = _invoke("--workspace", str(workspace), "--format", "markdown", "--task", "reid")
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("|")]
    assert lines[0] == "| Backbone | Pretraining | Market-1501 (mAP) |"
    assert lines[2] == "| saip_tiny | saip | **41.26** |"
    assert lines[3] == "| random_tiny | random | 2.50 |"


def test_json_output_file(workspace, tmp_path):
    out = tmp_path / "out" / "report.json"
    result = _invoke("--workspace", str(workspace), "--format", "json", "--output", str(out))
    assert result.exit_code == 0, result.output
    obj = json.loads(out.read_text())
    values = {row["labels"]["Backbone"]: row["values"] for row in obj["rows"]}
    assert values == {
        "saip_tiny": {"market1501": 41.257, "pa100k": 70.5},
        "random_tiny": {"market1501": 2.5, "pa100k": 71.25},
    }


def test_db_option_csv_and_backbone_filter(workspace):
    result = _invoke(
        "--db", str(workspace / "results.sqlite"), "--format", "csv", "--backbone", "random_tiny"
    )
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "Backbone,Pretraining,Market-1501 (mAP),PA-100K (mA)",
        "random_tiny,random,2.5,71.25",
    ]


def test_radar_plot(workspace, tmp_path):
    plot = tmp_path / "radar.png"
    result = _invoke("--workspace", str(workspace), "--format", "latex", "--plot", str(plot))
    assert result.exit_code == 0, result.output
    assert "\\textbf{71.25}" in result.output
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 10_000


def test_scales_table_and_plot(workspace, tmp_path):
    plot = tmp_path / "scales.png"
    result = _invoke("--workspace", str(workspace), "--scales", "--format", "markdown", "--plot", str(plot))
    assert result.exit_code == 0, result.output
    assert "| saip_tiny | saip | Market-1501 | frozen | mAP | 30.00 | **41.26** |" in result.output
    assert plot.stat().st_size > 5_000


def test_empty_or_absent_store_exits_zero(tmp_path):
    result = _invoke("--workspace", str(tmp_path / "nowhere"))
    assert result.exit_code == 0 and "No results yet" in result.output
    assert not (tmp_path / "nowhere").exists()  # reading never creates a workspace
    ResultsStore(tmp_path / "empty" / "results.sqlite")
    result = _invoke("--workspace", str(tmp_path / "empty"))
    assert result.exit_code == 0 and "No results yet" in result.output


def test_workspace_from_environment(workspace, monkeypatch):
    monkeypatch.setenv("SAIP_WORKSPACE", str(workspace))
    result = _invoke("--format", "csv")
    assert result.exit_code == 0 and "saip_tiny" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dataset", "lip"], "no results match --dataset lip"),
        (["--format", "html"], "valid formats"),
        (["--db", "missing.sqlite"], "no such results database"),
        (["--scales", "--task", "attribute"], "scale other than 1"),
    ],
)
def test_user_errors_are_one_line_and_exit_one(workspace, args, message):
    result = _invoke("--workspace", str(workspace), *args) if "--db" not in args else _invoke(*args)
    assert result.exit_code == 1
    assert message in result.output
    assert "Traceback" not in result.output


def test_narrow_terminal_wraps_columns_into_groups_and_keeps_names(tmp_path, monkeypatch):
    from saip_bench.cli import common

    monkeypatch.setattr(common.console, "_width", 80)
    ws = tmp_path / "ws"
    store = ResultsStore(ws / "results.sqlite")
    store.add(_record("saip_tiny", "market1501", 41.257))
    store.add(_record("random_tiny", "pa100k", 12.5))
    result = _invoke("--workspace", str(ws), "--all-datasets")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert any("saip_tiny" in line and "41.26" in line for line in lines)  # whole names, whole numbers
    assert any("random_tiny" in line and "12.50" in line for line in lines)
    assert all(len(line) <= 80 for line in lines)
    # Nothing is cut: all 12 datasets are shown, in several groups that each repeat the backbone labels.
    for title in ("MSMT17", "LIP", "CIHP", "CrowdHuman", "Fashionpedia"):  # titles no layout can split
        assert title in result.output, title
    assert sum("saip_tiny" in line for line in lines) >= 2


def test_wrapped_groups_share_one_precision(tmp_path, monkeypatch):
    """A group whose percentages happen to be below 1 (AP 0.27) keeps the table's 2 decimals."""
    from saip_bench.cli import common

    monkeypatch.setattr(common.console, "_width", 80)
    ws = tmp_path / "ws"
    store = ResultsStore(ws / "results.sqlite")
    store.add(_record("saip_tiny", "market1501", 41.257))
    store.add(_record("saip_tiny", "fashionpedia", 0.27))
    result = _invoke("--workspace", str(ws), "--all-datasets")
    assert result.exit_code == 0, result.output
    assert "0.27" in result.output and "0.2700" not in result.output
