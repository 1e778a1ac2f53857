"""``saip report``'s library: a table model built from the results store, exporters and plots."""

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
from saip_bench.report.radar import plot_radar
from saip_bench.report.scales import build_scale_table, plot_scales
from saip_bench.report.table import Column, ReportTable, Row, build_report_table

__all__ = [
    "EXPORTERS",
    "Column",
    "ReportTable",
    "Row",
    "build_report_table",
    "build_scale_table",
    "plot_radar",
    "plot_scales",
    "render",
    "to_csv",
    "to_json",
    "to_latex",
    "to_markdown",
    "to_rich",
    "to_text",
]
