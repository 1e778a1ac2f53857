"""Provenance: every export traces each cell to its runs; ``--records`` lists them with their run directory;
LaTeX is a well-formed booktabs float whose caption names protocol and budget."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest

from saip_bench.report import build_report_table, to_csv, to_json, to_latex, to_markdown
from saip_bench.report.provenance import records_csv, records_json, run_dir, table_records


@pytest.fixture
def traced(make, numbered):
    """saip_tiny on Market-1501 (2 seeds, smoke) and PA-100K (full); mae_tiny on Market-1501."""
    common = dict(backbone_digest="0123456789abcdef", package_version="0.2.0", git_revision="feedbeef12")
    return numbered(
        [
            make("saip_tiny", "market1501", 40.0, seed=0, config_digest="aaaaaaaaaa11", **common),
            make("saip_tiny", "market1501", 42.0, seed=1, config_digest="bbbbbbbbbb22", **common),
            make("saip_tiny", "pa100k", 70.0, budget="full", config_digest="cccccccccc33", **common),
            make("mae_tiny", "market1501", 35.0, config_digest="dddddddddd44"),
        ]
    )


def test_csv_and_json_carry_each_cells_provenance(traced):
    table = build_report_table(traced)
    lines = {(d["Backbone"], d["column"]): d for d in csv.DictReader(io.StringIO(to_csv(table)))}
    saip = lines[("saip_tiny", "market1501")]
    assert (saip["budget"], saip["protocol"], saip["scale"], saip["seeds"]) == (
        "smoke",
        "frozen",
        "1.0",
        "0;1",
    )
    assert saip["config_digests"] == "aaaaaaaaaa11;bbbbbbbbbb22"
    assert (saip["package_versions"], saip["git_revisions"], saip["record_ids"]) == (
        "0.2.0",
        "feedbeef12",
        "1;2",
    )
    assert lines[("saip_tiny", "pa100k")]["budget"] == "full"
    cell = json.loads(to_json(table))["rows"][0]["cells"]["pa100k"]
    assert cell["budget"] == "full" and cell["config_digests"] == ["cccccccccc33"]
    assert cell["package_versions"] == ["0.2.0"] and cell["git_revisions"] == ["feedbeef12"]


def test_text_formats_carry_provenance_and_mixed_budgets_say_so(traced):
    table = build_report_table(traced)
    assert table.title == "saip-bench results (primary metric), mixed budgets"
    assert "mixed budgets: smoke, except full for saip_tiny (PA-100K)" in table.notes
    md = to_markdown(table)
    assert (
        "| saip_tiny | Market-1501 | smoke | frozen | x1 | 0,1 | aaaaaaaaaa,bbbbbbbbbb | 0.2.0 | feedbeef12 |"
        in md
    )
    tex = to_latex(table)
    caption = re.search(r"\\caption\{(.*)\}", tex).group(1)
    assert "mixed budgets" in caption and "protocol: frozen" in caption
    assert "% saip_tiny | PA-100K | full | frozen | x1 | 0 | cccccccccc | 0.2.0 | feedbeef12" in tex


def test_records_list_every_record_behind_the_table_with_its_run_directory(traced, tmp_path):
    table = build_report_table(traced)
    behind = table_records(table)
    assert [r.id for r in behind] == [1, 2, 3, 4]
    expected = "runs/market1501/saip_tiny-0123456789-frozen-smoke-aaaaaaaaaa-x1"
    assert run_dir(behind[0]) == expected  # saip evaluate's naming (evaluate/dispatch.py)
    assert run_dir(behind[0], tmp_path) == str(tmp_path / expected)
    lines = list(csv.DictReader(io.StringIO(records_csv(behind))))
    assert [d["run_dir"] for d in lines][:2] == [expected, expected.replace("aaaaaaaaaa", "bbbbbbbbbb")]
    assert (
        lines[0]["metric:mAP"] == "40.0" and lines[2]["metric:mA"] == "70.0" and lines[0]["metric:mA"] == ""
    )
    assert (lines[1]["seed"], lines[1]["budget"], lines[1]["git_revision"]) == ("1", "smoke", "feedbeef12")
    obj = json.loads(records_json(behind))
    assert obj[2]["metrics"] == {"mA": 70.0} and obj[2]["run_dir"].startswith("runs/pa100k/saip_tiny-")


def test_seeds_latest_records_are_only_the_latest(traced):
    table = build_report_table(traced, seeds="latest")
    assert [r.id for r in table_records(table)] == [2, 3, 4]


def _environments(tex: str) -> list[str]:
    stack: list[str] = []
    for kind, name in re.findall(r"\\(begin|end)\{([^}]*)\}", tex):
        if kind == "begin":
            stack.append(name)
        else:
            assert stack and stack.pop() == name, f"\\end{{{name}}} closes nothing open"
    assert stack == [], f"unclosed: {stack}"
    return re.findall(r"\\begin\{([^}]*)\}", tex)


def test_latex_is_balanced_booktabs_with_escapes(make, numbered):
    records = numbered(
        [
            make("saip_tiny&50%", "market1501", 41.0, seed=0),
            make("saip_tiny&50%", "market1501", 43.0, seed=1),
            make("mae#1", "market1501", 43.0, seed=0),
            make("mae#1", "market1501", 41.0, seed=1),  # a tie: both bold
        ]
    )
    tex = to_latex(build_report_table(records))
    assert _environments(tex) == ["table", "tabular"]
    body = [line for line in tex.splitlines() if not line.startswith("%")]
    rules = [line for line in body if line in ("\\toprule", "\\midrule", "\\bottomrule")]
    assert rules == ["\\toprule", "\\midrule", "\\bottomrule"]
    assert "\\begin{tabular}{llr}" in tex
    rows = [line for line in body if line.endswith("\\\\")]
    assert {line.count(" & ") for line in rows} == {2}  # header and every row: 3 cells
    assert "saip\\_tiny\\&50\\%" in tex and "mae\\#1" in tex
    assert tex.count("\\textbf{42.00 $\\pm$ 1.41 (2)}") == 2
    caption = re.search(r"\\caption\{(.*)\}", tex).group(1)
    assert "protocol: frozen" in caption and "budget: smoke" in caption
    # Nothing outside LaTeX's default input set reaches the body (± and ↓ are math, – is --).
    assert all(ord(ch) < 128 for line in body for ch in line), [line for line in body if not line.isascii()]
