"""The scale table's robustness figure: R on hand-made values, lower-is-better metrics, rows without a
scale-1 result, the two probe modes in separate rows, the seed spread, the exports, the plot, and
``saip report --scales`` in a fresh process.

Every expected number is worked out by hand in the comment next to it.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from saip_bench.report import build_report_table, build_scale_table, to_csv, to_json, to_latex, to_markdown
from saip_bench.report.robustness import robustness
from saip_bench.report.scales import ROBUSTNESS, scales_figure
from saip_bench.results import ResultsStore


def test_robustness_is_the_mean_ratio_to_scale_one_in_percent():
    assert robustness({0.5: 30.0, 1.0: 40.0, 1.5: 36.0}) == pytest.approx(82.5)  # (0.75 + 0.9) / 2
    assert robustness({1.0: 40.0, 0.75: 40.0}) == pytest.approx(100.0)  # no loss
    assert robustness({1.0: 0.8, 0.5: 0.6, 2.0: float("nan")}) == pytest.approx(75.0)  # NaN = missing


def test_lower_is_better_inverts_each_ratio():
    # MR-2 10 at x1, 20 at x0.5 and 12.5 at x1.5: (10/20 + 10/12.5) / 2 = (0.5 + 0.8) / 2.
    assert robustness({0.5: 20.0, 1.0: 10.0, 1.5: 12.5}, lower_is_better=True) == pytest.approx(65.0)
    assert robustness({0.5: 20.0, 1.0: 10.0, 1.5: 12.5}) == pytest.approx(162.5)  # (2 + 1.25) / 2


@pytest.mark.parametrize(
    "values",
    [{0.5: 30.0, 1.5: 36.0}, {1.0: 40.0}, {}, {1.0: 0.0, 0.5: 3.0}, {1.0: 4.0, 0.5: -1.0}],
    ids=["no-scale-1", "only-scale-1", "empty", "zero-at-1", "negative"],
)
def test_robustness_is_none_where_undefined(values):
    assert robustness(values) is None


@pytest.fixture
def probe_records(make, numbered):
    """Backbone "a" on PA-100K (linear) probed both ways, on Market-1501 (frozen); "b" from before
    ``train_scale`` existed (None: trained at its own scale)."""
    return numbered(
        [
            make("a", "pa100k", 80.0, protocol="linear", train_scale=1.0, train_run="runs/p"),
            make("a", "pa100k", 60.0, protocol="linear", scale=0.5, train_scale=1.0, train_run="runs/p"),
            make("a", "pa100k", 76.0, protocol="linear", scale=1.5, train_scale=1.0, train_run="runs/p"),
            make("a", "pa100k", 40.0, protocol="linear", scale=0.5, train_scale=0.5, train_run="runs/q"),
            make("a", "market1501", 50.0),
            make("a", "market1501", 45.0, scale=0.5, train_scale=0.5),
            make("b", "pa100k", 70.0, protocol="linear"),
            make("b", "pa100k", 63.0, protocol="linear", scale=0.5),  # train_scale None
        ]
    )


def _rows(table):
    return {(r.labels[0], r.labels[2], r.labels[5]): r for r in table.rows}


def test_probe_modes_are_separate_rows(probe_records):
    table = build_scale_table(probe_records)
    assert table.label_headers[-1] == "Probe"
    rows = _rows(table)
    assert list(rows) == [
        ("a", "Market-1501", "no training"),  # frozen trains nothing: one row
        ("a", "PA-100K", "trained x1"),
        ("a", "PA-100K", "per scale"),
        ("b", "PA-100K", "per scale"),  # no train_scale: trained at its own scale
    ]
    once, per_scale = rows[("a", "PA-100K", "trained x1")], rows[("a", "PA-100K", "per scale")]
    # Each mode keeps its own x0.5; both share the x1 result as their reference.
    assert [once.value(c) for c in table.columns] == pytest.approx(
        [60.0, 80.0, 76.0, 85.0]
    )  # (.75 + .95) / 2
    assert [per_scale.value(c) for c in table.columns] == pytest.approx([40.0, 80.0, None, 50.0])  # 40 / 80
    assert rows[("a", "Market-1501", "no training")].value(ROBUSTNESS) == pytest.approx(90.0)  # 45 / 50
    assert rows[("b", "PA-100K", "per scale")].value(ROBUSTNESS) == pytest.approx(90.0)  # 63 / 70
    assert any(note.startswith("Probe: trained x1 = one model trained at x1") for note in table.notes)


def test_main_table_is_unchanged_by_probe_records(probe_records):
    everything = build_report_table(probe_records)
    unit = build_report_table([r for r in probe_records if r.scale == 1.0])
    assert [(r.key, r.values) for r in everything.rows] == [(r.key, r.values) for r in unit.rows]
    assert everything.rows[0].value("pa100k") == 80.0


def test_lower_is_better_row(make, numbered):
    def mr2(value, scale):
        fields = dict(task="detection", protocol="finetune", primary_metric="MR-2", metrics={"MR-2": value})
        return make("d", "crowdhuman", value, scale=scale, train_scale=1.0, **fields)

    table = build_scale_table(numbered([mr2(10.0, 1.0), mr2(20.0, 0.5), mr2(12.5, 1.5)]))
    (row,) = table.rows
    assert row.value(ROBUSTNESS) == pytest.approx(65.0)  # (10/20 + 10/12.5) / 2
    assert row.best == {"x1"}  # the smallest miss rate


def test_row_without_scale_one_has_no_robustness(make, numbered):
    table = build_scale_table(
        numbered([make("a", "market1501", 20.0, scale=0.5), make("a", "market1501", 25.0)])
    )
    table_b = build_scale_table(numbered([make("b", "market1501", 20.0, scale=0.5)]))
    assert table.rows[0].value(ROBUSTNESS) == pytest.approx(80.0)
    (row,) = table_b.rows
    assert row.value(ROBUSTNESS) is None and ROBUSTNESS.key not in row.spread
    assert [c.key for c in table_b.columns] == ["x0.5", "robustness"]  # shown as missing, explained
    assert "b Market-1501 (frozen, no training: no x1 result)" in table_b.notes[-1]
    assert "–" in to_markdown(table_b).splitlines()[2]


def test_seed_spread_only_when_every_seed_has_every_scale(make, numbered):
    values = {0: {1.0: 40.0, 0.5: 30.0, 1.5: 36.0}, 1: {1.0: 50.0, 0.5: 40.0, 1.5: 45.0}}
    records = [
        make("s", "market1501", v, scale=s, seed=seed) for seed, by in values.items() for s, v in by.items()
    ]
    (row,) = build_scale_table(numbered(records)).rows
    # Means: x1 45, x0.5 35, x1.5 40.5 -> (35/45 + 40.5/45) / 2; per seed R 82.5 and (0.8 + 0.9) / 2 = 85.
    assert row.value(ROBUSTNESS) == pytest.approx(100 * 75.5 / 90)
    assert row.spread[ROBUSTNESS.key] == pytest.approx((2.5 / math.sqrt(2), 2))
    (row,) = build_scale_table(numbered(records[:-1])).rows  # seed 1 has no x1.5
    assert row.value(ROBUSTNESS) == pytest.approx(100 * (35 + 36) / 90)  # x1.5 is seed 0's 36 alone
    assert ROBUSTNESS.key not in row.spread
    assert "83.9 ± 1.8 (2)" in to_markdown(build_scale_table(numbered(records)))


def test_no_seed_spread_when_one_seeds_x1_result_is_near_zero(make, numbered):
    # Seed 1's x1 R1 is 0.5 against a mean of (20 + 0.5 + 22) / 3 = 14.2: under half of it. Its own ratio
    # (8 / 0.5 = 1600 %) would swamp the std, as in the CPU study's "122.5 ± 2405.5".
    values = {0: {1.0: 20.0, 0.5: 18.0}, 1: {1.0: 0.5, 0.5: 8.0}, 2: {1.0: 22.0, 0.5: 20.0}}
    records = [
        make("m", "cuhk_pedes", v, scale=s, seed=seed) for seed, by in values.items() for s, v in by.items()
    ]
    table = build_scale_table(numbered(records))
    (row,) = table.rows
    assert row.value(ROBUSTNESS) == pytest.approx(100 * 46 / 42.5)  # the means' ratio is still shown
    assert ROBUSTNESS.key not in row.spread
    assert any("under 50% of the seeds' mean" in note and "m CUHK-PEDES" in note for note in table.notes)
    values[1][1.0] = 15.0  # 15 >= 0.5 x 19: the spread is back
    records = [
        make("m", "cuhk_pedes", v, scale=s, seed=seed) for seed, by in values.items() for s, v in by.items()
    ]
    (row,) = build_scale_table(numbered(records)).rows
    assert row.spread[ROBUSTNESS.key][1] == 3


def test_exports_carry_the_robustness_column(probe_records):
    table = build_scale_table(probe_records)
    lines = [line for line in csv.DictReader(io.StringIO(to_csv(table))) if line["column"] == "robustness"]
    assert [(d["Backbone"], d["Probe"], d["dataset"], d["protocol"], d["metric"]) for d in lines] == [
        ("a", "no training", "market1501", "frozen", "Robust. %"),
        ("a", "trained x1", "pa100k", "linear", "Robust. %"),
        ("a", "per scale", "pa100k", "linear", "Robust. %"),
        ("b", "per scale", "pa100k", "linear", "Robust. %"),
    ]
    assert [float(d["mean"]) for d in lines] == pytest.approx([90.0, 85.0, 50.0, 90.0])  # full precision
    assert {d["n"] for d in lines} == {"1"} and {d["column_title"] for d in lines} == {"Robust. %"}

    obj = json.loads(to_json(table))
    assert obj["columns"][-1]["key"] == "robustness" and obj["label_headers"][-1] == "Probe"
    assert [r["values"]["robustness"] for r in obj["rows"]] == pytest.approx([90.0, 85.0, 50.0, 90.0])

    markdown = to_markdown(table).splitlines()
    assert markdown[0].endswith("| Probe | x0.5 | x1 | x1.5 | Robust. % |")
    assert markdown[3] == "| a | a | PA-100K | linear | mA | trained x1 | 60.00 | **80.00** | 76.00 | 85.0 |"
    latex = to_latex(table)
    assert "Probe & x0.5 & x1 & x1.5 & Robust. \\% \\\\" in latex and "& 50.0 \\\\" in latex


def test_fraction_metrics_keep_their_digits(make, numbered):
    table = build_scale_table(
        numbered([make("a", "market1501", 0.8), make("a", "market1501", 0.6, scale=0.5)])
    )
    assert "| 0.6000 | **0.8000** | 75.0 |" in to_markdown(table)  # R to one decimal, never 4


def test_plot_shows_each_lines_robustness(probe_records):
    one = build_scale_table([r for r in probe_records if r.dataset == "pa100k" and r.backbone_name == "a"])
    fig = scales_figure(one)
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == ["a (R 85%)", "a, per scale (R 50%)"]

    fig = scales_figure(build_scale_table(probe_records))
    fig.canvas.draw()
    bands = [[t.get_text() for t in ax.get_legend().get_texts()] for ax in fig.axes]
    assert bands == [["R 90%"], ["R 85%", "R 50%", "R 90%"]]  # Market-1501 (a), PA-100K (a, a, b)
    for ax in fig.axes:
        box = ax.get_legend().get_window_extent()
        for line in ax.get_lines():
            for x, y in ax.transData.transform(line.get_xydata()):
                assert not box.contains(x, y)  # no data point under the robustness band


SCRIPT = Path(sys.executable).with_name("saip")
SAIP = [str(SCRIPT)] if SCRIPT.is_file() else [sys.executable, "-m", "saip_bench.cli.app"]


def test_saip_report_scales_in_a_fresh_process(probe_records, tmp_path):
    store = ResultsStore(tmp_path / "ws" / "results.sqlite")
    for rec in probe_records:
        rec.id = None
        store.add(rec)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200", "NO_COLOR": "1"}
    env.pop("SAIP_WORKSPACE", None)
    args = ["report", "--workspace", "ws", "--scales", "--output", "r.csv", "--plot", "r.png"]
    done = subprocess.run(
        [*SAIP, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = list(csv.DictReader((tmp_path / "r.csv").open()))
    got = {
        (d["Backbone"], d["Dataset"], d["Probe"]): float(d["mean"])
        for d in lines
        if d["column"] == "robustness"
    }
    assert got == pytest.approx(
        {
            ("a", "Market-1501", "no training"): 90.0,
            ("a", "PA-100K", "trained x1"): 85.0,
            ("a", "PA-100K", "per scale"): 50.0,
            ("b", "PA-100K", "per scale"): 90.0,
        }
    )
    assert (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"
