"""Every export format parses back to the numbers it shows, with the best cells marked.

Single-seed tables (these fixtures) show bare means; tests/report/test_seeds.py covers ``mean ± std (n)``.
"""

from __future__ import annotations

import csv
import io
import json
import re

import pytest

from saip_bench.report import (
    build_report_table,
    build_scale_table,
    render,
    to_csv,
    to_json,
    to_latex,
    to_markdown,
)
from saip_bench.report.export import choose_digits, to_text


def _expected(table, digits=None):
    """{(row label, column title): value} rounded as displayed (None = missing)."""
    out = {}
    for row in table.rows:
        for col in table.columns:
            value = row.value(col)
            out[(row.labels[0], col.title)] = (
                None if value is None else (value if digits is None else round(value, digits))
            )
    return out


def _best(table):
    return {(row.labels[0], c.title) for row in table.rows for c in table.columns if c.key in row.best}


def _number(cell: str) -> tuple[float | None, bool]:
    """(mean, bold) of a rendered cell in any format (``41.26``, ``**41.26 ± 0.50 (3)**``, ``40.00 (1)``)."""
    cell = cell.strip()
    bold = False
    for pattern in (r"^\*\*(.*)\*\*$", r"^\\textbf\{(.*)\}$"):
        if m := re.match(pattern, cell):
            cell, bold = m.group(1), True
    if cell in ("", "–", "--"):
        return None, bold
    return float(re.split(r" (?:±|\$\\pm\$|\()", cell)[0]), bold


def _parse_rows(header: list[str], rows: list[list[str]], table, n_labels: int):
    titles = [re.sub(r" \([^)]*\)$", "", h.strip()) for h in header[n_labels:]]
    values, bold = {}, set()
    for cells in rows:
        label = cells[0].strip().replace("\\_", "_")
        for title, cell in zip(titles, cells[n_labels:], strict=True):
            value, is_bold = _number(cell)
            values[(label, title)] = value
            if is_bold:
                bold.add((label, title))
    return values, bold


def parse_markdown(text: str, table):
    first = text.split("\n\n")[0]  # the table; the provenance table under it is not the data
    lines = [line for line in first.splitlines() if line.startswith("|")]
    split = [[c for c in line.strip().strip("|").split(" | ")] for line in lines]
    assert set(lines[1].replace("|", "").split()) <= {"---", "---:"}
    return _parse_rows(split[0], split[2:], table, len(table.label_headers))


def parse_latex(text: str, table):
    body = text[text.index("\\toprule") : text.index("\\bottomrule")]
    lines = [line.rstrip(" \\") for line in body.splitlines() if line.endswith("\\\\")]
    split = [line.split(" & ") for line in lines]
    return _parse_rows(split[0], split[1:], table, len(table.label_headers))


def parse_csv(text: str, table):
    """{(row label, column title): mean} of the long-format CSV's shown lines, and the best-marked ones."""
    values, best = {}, set()
    for line in csv.DictReader(io.StringIO(text)):
        if line["shown"] == "1":
            values[(line["Backbone"], line["column_title"])] = float(line["mean"])
            if line["best"] == "1":
                best.add((line["Backbone"], line["column_title"]))
    return values, best


@pytest.mark.parametrize("fmt", ["markdown", "latex"])
def test_rounded_formats_parse_back(sample_records, fmt):
    table = build_report_table(sample_records)
    digits = choose_digits(table)
    assert digits == 2
    text = to_markdown(table) if fmt == "markdown" else to_latex(table)
    values, bold = (parse_markdown if fmt == "markdown" else parse_latex)(text, table)
    assert values == _expected(table, digits)
    assert values[("saip_tiny", "Market-1501")] == 41.26  # 41.257 shown with 2 decimals
    assert bold == _best(table) == {("saip_tiny", "Market-1501"), ("mae_tiny", "PA-100K")}


def test_csv_keeps_full_precision(sample_records):
    table = build_report_table(sample_records)
    text = to_csv(table)
    values, best = parse_csv(text, table)
    assert values == {k: v for k, v in _expected(table).items() if v is not None}  # missing cells: no line
    assert values[("saip_tiny", "LIP")] == 33.3333
    assert best == _best(table)
    assert "**" not in text and "±" not in text  # CSV is plain data


def test_json_round_trip(sample_records):
    table = build_report_table(sample_records)
    obj = json.loads(to_json(table))
    assert [c["key"] for c in obj["columns"]] == [c.key for c in table.columns]
    for row, back in zip(table.rows, obj["rows"], strict=True):
        assert back["labels"]["Backbone"] == row.labels[0]
        assert back["values"] == {c.key: row.value(c) for c in table.columns}
        assert set(back["best"]) == row.best


def test_digits_and_fractions(make, numbered):
    table = build_report_table(numbered([make("a", "market1501", 0.41257), make("b", "market1501", 0.5)]))
    assert choose_digits(table) == 4
    values, _ = parse_markdown(to_markdown(table), table)
    assert values[("a", "Market-1501")] == 0.4126
    values, _ = parse_markdown(to_markdown(table, digits=1), table)
    assert values[("b", "Market-1501")] == 0.5


def test_latex_escapes_labels(make, numbered):
    table = build_report_table(numbered([make("saip_tiny&50%", "market1501", 1.0)]))
    text = to_latex(table)
    assert "saip\\_tiny\\&50\\%" in text and "\\begin{tabular}{llr}" in text


def test_scale_table_exports(sample_records):
    table = build_scale_table(sample_records)
    values, bold = parse_markdown(to_markdown(table), table)
    assert values == {
        ("saip_tiny", "x0.5"): 30.0,
        ("saip_tiny", "x1"): 41.26,
        ("saip_tiny", "x1.5"): 38.0,
        ("saip_tiny", "Robust. %"): 82.4,  # (30 + 38) / 2 / 41.257, always one decimal
    }
    assert bold == {("saip_tiny", "x1")}


def test_text_table_and_render_dispatch(sample_records):
    table = build_report_table(sample_records)
    text = to_text(table)
    assert "Market-1501" in text and "41.26" in text and "saip_tiny" in text
    assert render(table, "csv") == to_csv(table)
    with pytest.raises(KeyError, match="valid names"):
        render(table, "html")
