"""Seeds: each cell is the mean, sample std and count over its seeds, ``mean ± std (n)`` in every format."""

from __future__ import annotations

import csv
import io
import json
import math
import re
import statistics

import pytest

from saip_bench.errors import SaipError
from saip_bench.report import build_report_table, to_csv, to_json, to_latex, to_markdown
from saip_bench.report.export import to_text
from saip_bench.report.table import aggregate

#: The issue's example cell: three seeds of one backbone x dataset.
ISSUE_SEEDS = (21.73, 18.86, 23.47)


def _cell(records, digest_prefix="a"):
    [cell] = [c for (digest, *_), c in aggregate(records).items() if digest.startswith(digest_prefix)]
    return cell


@pytest.mark.parametrize(
    ("values", "mean", "std"),
    [
        ((21.73,), 21.73, 0.0),
        ((21.73, 18.86), 20.295, 2.029396462),  # |a - b| / sqrt(2)
        (ISSUE_SEEDS, 21.353333333, 2.327967640),
    ],
)
def test_mean_std_n_are_exact_for_one_two_and_three_seeds(make, numbered, values, mean, std):
    records = numbered([make("a", "market1501", v, seed=s) for s, v in enumerate(values)])
    cell = _cell(records)
    assert cell.n == len(values) and cell.seeds == tuple(range(len(values)))
    assert cell.mean == pytest.approx(mean, abs=1e-9)
    assert cell.std == pytest.approx(std, abs=1e-9)
    assert cell.std == (statistics.stdev(values) if len(values) > 1 else 0.0)  # ddof=1
    row = build_report_table(records).rows[0]
    assert row.values["market1501"] == cell.mean and row.spread["market1501"] == (cell.std, cell.n)


def test_a_rerun_of_a_seed_replaces_it_and_latest_mode_keeps_one_record(make, numbered):
    records = numbered(
        [
            make("a", "market1501", 10.0, seed=0),
            make("a", "market1501", 20.0, seed=1),
            make("a", "market1501", 30.0, seed=0),  # seed 0 again: supersedes the 10.0
        ]
    )
    cell = _cell(records)
    assert (cell.mean, cell.n, cell.seeds) == (25.0, 2, (0, 1))
    assert [r.primary_value for r in cell.records] == [20.0, 30.0]
    latest = [c for c in aggregate(records, seeds="latest").values()]
    assert [(c.mean, c.n, c.seeds) for c in latest] == [(30.0, 1, (0,))]
    with pytest.raises(SaipError, match="valid modes: all, latest"):
        aggregate(records, seeds="mean")


def test_a_later_budget_supersedes_instead_of_mixing(make, numbered):
    records = numbered(
        [
            make("a", "market1501", 10.0, seed=0, budget="smoke"),
            make("a", "market1501", 12.0, seed=1, budget="smoke"),
            make("a", "market1501", 80.0, seed=0, budget="full"),
        ]
    )
    cell = _cell(records)
    assert (cell.mean, cell.n) == (80.0, 1)
    assert {r.budget for r in cell.records} == {"full"}


def test_nan_seed_is_left_out_and_an_all_nan_cell_is_missing(make, numbered):
    records = numbered(
        [
            make("a", "market1501", math.nan, seed=0),
            make("a", "market1501", 40.0, seed=1),
            make("b", "market1501", math.nan, seed=0),
        ]
    )
    cells = {digest[0]: c for (digest, *_), c in aggregate(records).items()}
    assert set(cells) == {"a"} and (cells["a"].mean, cells["a"].n, cells["a"].seeds) == (40.0, 1, (1,))


@pytest.fixture
def mixed(make, numbered):
    """Market-1501: a (3 seeds) 21.35 ± 2.33, b (1 seed) 20.0; PA-100K: a and b tied at 70.0 (2 seeds)."""
    return numbered(
        [
            *(make("a", "market1501", v, seed=s) for s, v in enumerate(ISSUE_SEEDS)),
            make("b", "market1501", 20.0, seed=0),
            make("a", "pa100k", 69.0, seed=0),
            make("a", "pa100k", 71.0, seed=1),
            make("b", "pa100k", 71.0, seed=0),
            make("b", "pa100k", 69.0, seed=1),
        ]
    )


def test_every_text_format_shows_mean_std_and_n(mixed):
    table = build_report_table(mixed)
    md = to_markdown(table)
    assert "| a | a | **21.35 ± 2.33 (3)** | **70.00 ± 1.41 (2)** |" in md
    assert "| b | b | 20.00 (1) | **70.00 ± 1.41 (2)** |" in md  # a single seed: marked (1), no spread
    assert "(1) = a single seed: no spread" in md
    assert "21.35 ± 2.33 (3)" in to_text(table)
    tex = to_latex(table)
    assert "\\textbf{21.35 $\\pm$ 2.33 (3)}" in tex and "20.00 (1)" in tex and "±" not in tex


def test_csv_and_json_carry_mean_std_and_n_as_separate_fields(mixed):
    table = build_report_table(mixed)
    lines = [d for d in csv.DictReader(io.StringIO(to_csv(table))) if d["shown"] == "1"]
    a_market = next(d for d in lines if d["Backbone"] == "a" and d["column"] == "market1501")
    assert float(a_market["mean"]) == pytest.approx(21.353333333, abs=1e-9)
    assert float(a_market["std"]) == pytest.approx(2.327967640, abs=1e-9)
    assert (a_market["n"], a_market["seeds"]) == ("3", "0;1;2")
    obj = json.loads(to_json(table))
    cell = obj["rows"][0]["cells"]["market1501"]
    assert (cell["n"], cell["seeds"]) == (3, [0, 1, 2]) and cell["std"] == pytest.approx(2.32796764)
    assert obj["rows"][1]["spread"]["market1501"] == {"std": 0.0, "n": 1}


def test_best_compares_means_ties_all_bold_and_says_when_within_one_std(mixed):
    table = build_report_table(mixed)
    best = {row.labels[0]: row.best for row in table.rows}
    assert best == {"a": {"market1501", "pa100k"}, "b": {"pa100k"}}  # 70.0 == 70.0: both
    # a leads Market-1501 by 1.35 < its std 2.33: the seeds do not separate them.
    assert table.unseparated == ["market1501"]
    assert any("within one std of the runner-up in Market-1501" in note for note in table.notes)
    assert json.loads(to_json(table))["best_within_one_std"] == ["market1501"]


def test_a_clear_lead_is_not_flagged(make, numbered):
    records = numbered(
        [make("a", "market1501", v, seed=s) for s, v in enumerate((50.0, 51.0))]
        + [make("b", "market1501", v, seed=s) for s, v in enumerate((40.0, 41.0))]
    )
    table = build_report_table(records)
    assert table.unseparated == [] and not any("within one std" in n for n in table.notes)


def test_ties_at_the_shown_precision_are_all_bold(make, numbered):
    """41.2549 and 41.2551 both show as 41.25: bolding only one would misstate the table."""
    table = build_report_table(numbered([make("a", "market1501", 41.2551), make("b", "market1501", 41.2549)]))
    assert [row.best for row in table.rows] == [{"market1501"}, set()]  # the data knows which is larger
    assert re.findall(r"\\textbf\{([^}]*)\}", to_latex(table)) == ["41.26"]  # 41.26 vs 41.25: no tie
    table = build_report_table(numbered([make("a", "market1501", 41.2541), make("b", "market1501", 41.2549)]))
    assert re.findall(r"\\textbf\{([^}]*)\}", to_latex(table)) == ["41.25", "41.25"]
    assert to_markdown(table).count("**41.25**") == 2


def test_single_seed_tables_say_so_once_and_show_bare_means(sample_records):
    table = build_report_table(sample_records)
    assert "one seed per cell (n = 1): no spread" in table.notes
    assert "±" not in to_markdown(table) and "(1)" not in to_markdown(table).split("\n\n")[0]


def test_seeds_latest_note(mixed):
    table = build_report_table(mixed, seeds="latest")
    assert all(n == 1 for row in table.rows for _, n in row.spread.values())
    assert any("--seeds latest" in note for note in table.notes)
