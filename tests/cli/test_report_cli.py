"""`saip report` through the real Typer app: formats, output files, plots, filters, seeds, metrics, records,
bad input, empty stores."""

from __future__ import annotations

import csv
import io
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
        "crowdhuman": ("detection", "AP"),
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
    out = tmp_path / "report.json"  # in an existing folder: a missing one is an error (test_bad_output_...)
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
    lines = list(csv.DictReader(io.StringIO(result.output)))
    assert [(d["Backbone"], d["column_title"], d["metric"], d["mean"], d["n"]) for d in lines] == [
        ("random_tiny", "Market-1501", "mAP", "2.5", "1"),
        ("random_tiny", "PA-100K", "mA", "71.25", "1"),
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
    assert (
        "| saip_tiny | saip | Market-1501 | frozen | mAP | no training | 30.00 | **41.26** | 72.7 |"
        in result.output
    )
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


# -- formats by extension, seeds, metrics, provenance, bad input --------------------------------------------
@pytest.fixture
def seeded(tmp_path):
    """Two backbones x (Market-1501 with 3 seeds, CrowdHuman with AP / MR-2 / JI), as a campaign writes."""
    ws = tmp_path / "seeded"
    store = ResultsStore(ws / "results.sqlite")
    for name, base in (("saip_tiny", 40.0), ("mae_tiny", 30.0)):
        for seed in range(3):
            store.add(_record(name, "market1501", base + seed, seed=seed, config_digest=f"cfg{seed}"))
        metrics = {"AP": base + 5, "MR-2": 100 - base, "JI": base + 10}
        store.add(_record(name, "crowdhuman", base + 5, metrics=metrics, protocol="finetune"))
    return ws


@pytest.mark.parametrize(
    ("name", "marker"),
    [
        ("r.md", "| Backbone | Pretraining | Market-1501 (mAP) | CrowdHuman (AP) |"),
        ("r.tex", "\\begin{tabular}{llrr}"),
        ("r.csv", "Backbone,Pretraining,column,column_title,dataset,protocol,scale,budget,metric,"),
        ("r.json", '"best_within_one_std": ['),
        ("r.txt", "Market-1501"),
    ],
)
def test_format_follows_the_output_extension(seeded, tmp_path, name, marker):
    out = tmp_path / name
    result = _invoke("--workspace", str(seeded), "--output", str(out))
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert marker in text
    assert ("41.00 ± 1.00 (3)" in text) == (name in ("r.md", "r.txt"))  # CSV/JSON: separate fields
    if name == "r.tex":
        assert "41.00 $\\pm$ 1.00 (3)" in text and text.count("\\begin{") == text.count("\\end{") == 2


def test_format_option_wins_over_the_extension(seeded, tmp_path):
    out = tmp_path / "r.txt"
    result = _invoke("--workspace", str(seeded), "--output", str(out), "--format", "markdown")
    assert result.exit_code == 0, result.output
    assert out.read_text().startswith("| Backbone |")


def test_seeds_all_and_latest(seeded):
    result = _invoke("--workspace", str(seeded), "--format", "markdown", "--task", "reid")
    assert "| saip_tiny | saip | **41.00 ± 1.00 (3)** |" in result.output
    result = _invoke(
        "--workspace", str(seeded), "--format", "markdown", "--task", "reid", "--seeds", "latest"
    )
    assert "| saip_tiny | saip | **42.00** |" in result.output and "--seeds latest" in result.output


def test_dataset_detail_view_and_metric_choice(seeded):
    result = _invoke("--workspace", str(seeded), "--dataset", "crowdhuman", "--format", "markdown")
    assert result.exit_code == 0, result.output
    # The primary metric first, then the others as the store returns them (sorted).
    assert "| Backbone | Pretraining | AP | JI | MR-2 ↓ |" in result.output
    assert "| mae_tiny | mae | 35.00 | 40.00 | 70.00 |" in result.output  # MR-2 70 > 60: not bold
    assert "| saip_tiny | saip | **45.00** | **50.00** | **60.00** |" in result.output
    result = _invoke("--workspace", str(seeded), "--format", "markdown", "--metric", "crowdhuman:MR-2")
    assert result.exit_code == 0, result.output
    assert "| Backbone | Pretraining | Market-1501 (mAP) | CrowdHuman (MR-2 ↓) |" in result.output


def test_records_export_lists_the_runs_behind_the_table(seeded, tmp_path):
    out = tmp_path / "records.csv"
    result = _invoke("--workspace", str(seeded), "--task", "reid", "--records", str(out))
    assert result.exit_code == 0, result.output
    assert "wrote 6 records" in result.output
    lines = out.read_text().splitlines()
    assert lines[0].startswith("id,uid,backbone_name,") and len(lines) == 7
    first = lines[1].split(",")
    header = lines[0].split(",")
    row = dict(zip(header, first, strict=True))
    assert row["run_dir"] == str(seeded / "runs/market1501/saip_tiny-saip_tiny--frozen-smoke-cfg0-x1")
    assert row["seed"] == "0" and row["metric:mAP"] == "40.0"


def test_an_output_chart_by_extension(seeded, tmp_path):
    out = tmp_path / "chart.png"
    result = _invoke("--workspace", str(seeded), "--output", str(out))
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "Backbone" not in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--metric", "R5"], "--metric R5: no record has metric 'R5'; records have: mAP, AP, JI, MR-2"),
        (["--dataset", "lip"], "no results match --dataset lip"),
        (["--output", "{tmp}/r.html"], "r.html: no report format for extension '.html'; use .txt, .md"),
        (["--output", "{tmp}/r"], "no report format for extension '(none)'"),
        (["--output", "{tmp}/missing/r.md"], "r.md: folder {tmp}/missing does not exist"),
        (["--records", "{tmp}/r.xlsx"], "--records {tmp}/r.xlsx: must end in .csv or .json"),
        (["--seeds", "mean"], "valid modes: all, latest"),
        # The table would fit, the chart does not: neither is written.
        (["--output", "{tmp}/r.md", "--plot", "{tmp}/p.png", "--chart", "scales"], "needs the scale table"),
    ],
)
def test_bad_input_is_one_line_exit_one_and_no_file(seeded, tmp_path, args, message):
    args = [a.format(tmp=tmp_path) for a in args]
    before = sorted(tmp_path.rglob("*"))
    result = _invoke("--workspace", str(seeded), *args)
    assert result.exit_code == 1, result.output
    assert message.format(tmp=tmp_path) in " ".join(result.output.split())
    assert len(result.output.strip().splitlines()) <= 2 and "Traceback" not in result.output
    assert sorted(tmp_path.rglob("*")) == before  # no partial file, no folder made


def test_read_only_output_folder_is_one_line(seeded, tmp_path):
    import subprocess

    mount = tmp_path / "ro"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1M,ro", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a read-only tmpfs here (needs root): {done.stderr.decode().strip()}")
    try:
        result = _invoke("--workspace", str(seeded), "--output", str(mount / "r.md"))
        assert result.exit_code == 1, result.output
        assert "r.md" in result.output and "read-only" in result.output.lower()
        assert list(mount.iterdir()) == []
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_fresh_process_writes_markdown(seeded, tmp_path):
    """The real console script, as a user runs it: ``saip report --output x.md``."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    saip = str(Path(sys.executable).with_name("saip"))
    env = {**os.environ, "NO_COLOR": "1", "SAIP_WORKSPACE": str(seeded)}
    done = subprocess.run(
        [saip, "report", "--output", "x.md"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    text = (tmp_path / "x.md").read_text()
    lines = text.split("\n\n")[0].splitlines()
    assert lines[0] == "| Backbone | Pretraining | Market-1501 (mAP) | CrowdHuman (AP) |"
    assert lines[1] == "| --- | --- | ---: | ---: |"
    assert lines[2] == "| saip_tiny | saip | **41.00 ± 1.00 (3)** | **45.00 (1)** |"
    assert "wrote markdown report to x.md" in done.stdout
