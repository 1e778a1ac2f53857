"""Render a :class:`ReportTable` as a rich table, plain text, Markdown, CSV, LaTeX or JSON.

Markdown and LaTeX show values rounded to ``digits`` and the best per column in bold; CSV and JSON carry the
full-precision values (CSV for spreadsheets, JSON with the best-marks and notes for scripts). Every text
format parses back to the numbers it shows (tests do exactly that).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable

from rich import box
from rich.console import Console
from rich.markup import escape as _rich_escape
from rich.table import Table

from saip_bench.registry import Registry
from saip_bench.report.table import Column, ReportTable, Row

MISSING = "–"  # an en dash: visibly "no result", never mistaken for a negative number
LATEX_MISSING = "--"


def choose_digits(table: ReportTable) -> int:
    """Display precision: 2 decimals for percentages (96.04), 4 when every value is a fraction (0.9604)."""
    values = table.all_values()
    return 4 if values and all(abs(v) <= 1.0 for v in values) else 2


def format_value(value: float | None, digits: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    return f"{value:.{digits}f}"


def _header(column: Column) -> str:
    return f"{column.title} ({column.metric})" if column.metric else column.title


def to_rich(table: ReportTable, *, digits: int | None = None, compact: bool = False) -> Table:
    """A rich Table: best per column in bold green, missing cells as a dim dash, notes as the caption.

    Args:
        table: The table to render.
        digits: Decimals shown; by default :func:`choose_digits`.
        compact: Break dataset titles at their hyphens ("COCO-" / "Keypoints"), for narrow terminals.
    """
    digits = choose_digits(table) if digits is None else digits
    # No vertical rules: more dataset columns fit a terminal.
    out = Table(
        title=table.title,
        caption="\n".join(table.notes) or None,
        caption_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    for i, header in enumerate(table.label_headers):
        # Backbone names may shorten but never vanish, however many dataset columns there are.
        longest = max([len(row.labels[i]) for row in table.rows] + [len(header)])
        out.add_column(header, style="bold" if i == 0 else "", overflow="fold", min_width=min(longest, 16))
    for column in table.columns:
        title = _rich_escape(column.title)
        if compact:
            title = title.replace("-", "-\n").replace(" (", "\n(")
        # Numbers never break: the column is at least as wide as its longest value.
        width = max(
            [len(format_value(row.value(column), digits)) for row in table.rows] + [len(column.metric)]
        )
        out.add_column(
            f"{title}\n[dim]{_rich_escape(column.metric)}[/]",
            justify="right",
            min_width=width,
            no_wrap=compact,
        )
    for row in table.rows:
        cells = []
        for column in table.columns:
            text = format_value(row.value(column), digits)
            if column.key in row.best:
                text = f"[bold green]{text}[/]"
            elif row.value(column) is None:
                text = f"[dim]{text}[/]"
            cells.append(text)
        out.add_row(*(_rich_escape(label) for label in row.labels), *cells)
    return out


def to_text(table: ReportTable, *, digits: int | None = None, width: int = 200) -> str:
    """The rich table as plain text (for ``--format table --output FILE``)."""
    console = Console(file=io.StringIO(), width=width, color_system=None, force_terminal=False)
    console.print(to_rich(table, digits=digits))
    return console.file.getvalue()  # type: ignore[attr-defined]


def to_markdown(table: ReportTable, *, digits: int | None = None) -> str:
    """A GitHub-flavoured Markdown table; the best per column in ``**bold**``; notes below it."""
    digits = choose_digits(table) if digits is None else digits
    headers = [*table.label_headers, *(_header(c) for c in table.columns)]
    lines = [
        "| " + " | ".join(_md_escape(h) for h in headers) + " |",
        "|" + "|".join([" --- "] * len(table.label_headers) + [" ---: "] * len(table.columns)) + "|",
    ]
    for row in table.rows:
        cells = [_md_escape(label) for label in row.labels]
        for column in table.columns:
            text = format_value(row.value(column), digits)
            cells.append(f"**{text}**" if column.key in row.best else text)
        lines.append("| " + " | ".join(cells) + " |")
    if table.notes:
        lines.append("")
        lines += [f"_{_md_escape(note)}_" for note in table.notes]
    return "\n".join(lines) + "\n"


def to_csv(table: ReportTable) -> str:
    """CSV with one header line; values at full precision (``repr``), missing cells empty; no markup."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*table.label_headers, *(_header(c) for c in table.columns)])
    for row in table.rows:
        values = [row.value(c) for c in table.columns]
        writer.writerow([*row.labels, *("" if v is None else repr(float(v)) for v in values)])
    return buffer.getvalue()


def to_latex(table: ReportTable, *, digits: int | None = None) -> str:
    """A booktabs ``tabular`` (needs ``\\usepackage{booktabs}``); best per column in ``\\textbf``."""
    digits = choose_digits(table) if digits is None else digits
    spec = "l" * len(table.label_headers) + "r" * len(table.columns)
    headers = [*table.label_headers, *(_header(c) for c in table.columns)]
    lines = [f"% {_latex_escape(table.title)}"]
    lines += [f"% {_latex_escape(note)}" for note in table.notes]
    lines += [
        f"\\begin{{tabular}}{{{spec}}}",
        "\\toprule",
        " & ".join(_latex_escape(h) for h in headers) + " \\\\",
        "\\midrule",
    ]
    for row in table.rows:
        cells = [_latex_escape(label) for label in row.labels]
        for column in table.columns:
            value = row.value(column)
            if value is None:
                cells.append(LATEX_MISSING)
                continue
            text = format_value(value, digits)
            cells.append(f"\\textbf{{{text}}}" if column.key in row.best else text)
        lines.append(" & ".join(cells) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}"]
    return "\n".join(lines) + "\n"


def to_json(table: ReportTable) -> str:
    """JSON with the columns, every row's full-precision values (null when missing), best-marks and notes."""

    def row_obj(row: Row) -> dict:
        return {
            "labels": dict(zip(table.label_headers, row.labels, strict=True)),
            "key": row.key,
            "values": {c.key: row.value(c) for c in table.columns},
            "best": sorted(row.best),
        }

    obj = {
        "title": table.title,
        "columns": [
            {
                "key": c.key,
                "title": c.title,
                "metric": c.metric,
                "dataset": c.dataset,
                "protocol": c.protocol,
                "scale": c.scale,
            }
            for c in table.columns
        ],
        "rows": [row_obj(row) for row in table.rows],
        "notes": table.notes,
    }
    return json.dumps(obj, indent=2) + "\n"


#: Text exporters by ``--format`` name (``table`` is the rich table as plain text).
EXPORTERS: Registry[Callable[..., str]] = Registry("report format")
EXPORTERS.add("table", to_text)
EXPORTERS.add("markdown", to_markdown)
EXPORTERS.add("csv", lambda table, digits=None: to_csv(table))
EXPORTERS.add("latex", to_latex)
EXPORTERS.add("json", lambda table, digits=None: to_json(table))


def render(table: ReportTable, fmt: str, *, digits: int | None = None) -> str:
    """Render ``table`` in the named format (one of :data:`EXPORTERS`)."""
    return EXPORTERS.get(fmt)(table, digits=digits)


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


_LATEX_SPECIALS = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def _latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIALS.get(ch, ch) for ch in text)
