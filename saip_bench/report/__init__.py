"""``saip report``'s library: a table model built from the results store, exporters and plots."""

from saip_bench.report.bars import plot_bars
from saip_bench.report.detail import build_detail_table
from saip_bench.report.export import (
    EXPORTERS,
    render,
    to_csv,
    to_json,
    to_latex,
    to_markdown,
    to_rich,
    to_text,
)
from saip_bench.report.plots import PLOT_KINDS, plot
from saip_bench.report.radar import plot_radar
from saip_bench.report.robustness import robustness
from saip_bench.report.scales import build_scale_table, plot_scales
from saip_bench.report.table import Cell, Column, ReportTable, Row, aggregate, build_report_table

__all__ = [
    "EXPORTERS",
    "Cell",
    "PLOT_KINDS",
    "Column",
    "ReportTable",
    "Row",
    "aggregate",
    "build_detail_table",
    "build_report_table",
    "build_scale_table",
    "plot",
    "plot_bars",
    "plot_radar",
    "plot_scales",
    "render",
    "robustness",
    "to_csv",
    "to_json",
    "to_latex",
    "to_markdown",
    "to_rich",
    "to_text",
]
