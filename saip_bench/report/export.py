"""Render a :class:`ReportTable` as a rich table, plain text, Markdown, CSV, LaTeX or JSON.

Cells show the mean over seeds with its spread, ``71.20 ± 0.40 (3)`` (``71.20 (1)`` for a single seed; plain
``71.20`` when no cell of the table has more than one seed). Markdown and LaTeX round to ``digits`` and bold
the best per column, every cell whose shown value equals the best's (ties all bold); lower-is-better metrics
carry a ↓ in their header; each cell's provenance travels along (a folded Markdown section, LaTeX comments).
CSV and JSON (the table as data) live in :mod:`saip_bench.report.data_formats`. Every format parses back
to the numbers it shows (tests do exactly that).
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from pathlib import Path

from rich import box
from rich.console import Console
from rich.markup import escape as _rich_escape
from rich.table import Table

from saip_bench.errors import SaipError
from saip_bench.registry import Registry
from saip_bench.report.data_formats import to_csv, to_json
from saip_bench.report.provenance import cell_provenance
from saip_bench.report.table import Cell, Column, ReportTable, Row, is_lower_better

MISSING = "–"  # an en dash: visibly "no result", never mistaken for a negative number
LATEX_MISSING = "--"
DOWN = "↓"
#: ``--output`` file extensions and the format each one means (``.txt`` is the plain-text table).
FORMAT_BY_SUFFIX: dict[str, str] = {
    ".txt": "table",
    ".md": "markdown",
    ".markdown": "markdown",
    ".csv": "csv",
    ".tex": "latex",
    ".json": "json",
}


def format_for(path: str | Path) -> str:
    """The format ``path``'s extension names (:data:`FORMAT_BY_SUFFIX`); a :class:`SaipError` otherwise."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMAT_BY_SUFFIX:
        known = ", ".join(FORMAT_BY_SUFFIX)
        raise SaipError(
            f"{path}: no report format for extension {suffix or '(none)'!r}; use {known}, or give --format"
        )
    return FORMAT_BY_SUFFIX[suffix]


def choose_digits(table: ReportTable) -> int:
    """Display precision: 2 decimals for percentages (96.04), 4 when every value is a fraction (0.9604)."""
    values = table.all_values()
    return 4 if values and all(abs(v) <= 1.0 for v in values) else 2


def format_value(value: float | None, digits: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    return f"{value:.{digits}f}"


def column_digits(column: Column, digits: int) -> int:
    """The decimals ``column`` shows: its own (:attr:`Column.digits`), else the table's ``digits``."""
    return digits if column.digits is None else column.digits


def has_spread(table: ReportTable) -> bool:
    """Whether any cell rests on more than one seed: then every cell shows its spread and count."""
    return any(n > 1 for row in table.rows for _, n in row.spread.values())


def cell_text(row: Row, column: Column, digits: int, *, spread: bool, pm: str = "±") -> str:
    """``mean ± std (n)``, ``mean (1)`` for a single seed, or the bare mean when ``spread`` is off (or the
    cell has no spread, as a robustness figure whose seeds lack a scale); ``column.digits`` wins over
    ``digits``."""
    value = row.value(column)
    digits = column_digits(column, digits)
    text = format_value(value, digits)
    if value is None or not spread or column.key not in row.spread:
        return text
    std, n = row.spread[column.key]
    return f"{text} {pm} {std:.{digits}f} ({n})" if n > 1 else f"{text} (1)"


def bold_cells(table: ReportTable, digits: int) -> set[tuple[int, str]]:
    """(row index, column key) of the cells to bold: those showing the same value as a best-marked one."""
    out: set[tuple[int, str]] = set()
    for column in table.columns:
        shown = column_digits(column, digits)
        best = {format_value(row.value(column), shown) for row in table.rows if column.key in row.best}
        for i, row in enumerate(table.rows):
            if row.value(column) is not None and format_value(row.value(column), shown) in best:
                out.add((i, column.key))
    return out


def metric_label(column: Column, down: str = DOWN) -> str:
    """The column's metric, with ``down`` after a lower-is-better one (``MR-2 ↓``)."""
    if column.metric and is_lower_better(column.metric):
        return f"{column.metric} {down}"
    return column.metric


def _header(column: Column) -> str:
    metric = metric_label(column)
    if column.metric == column.title:  # a detail view's column is its metric
        return metric
    return f"{column.title} ({metric})" if metric else column.title


def to_rich(
    table: ReportTable, *, digits: int | None = None, compact: bool = False, spread: bool | None = None
) -> Table:
    """A rich Table: best per column in bold green, missing cells as a dim dash, notes as the caption.

    Args:
        table: The table to render.
        digits: Decimals shown; by default :func:`choose_digits`.
        compact: Break dataset titles at their hyphens ("COCO-" / "Keypoints"), for narrow terminals.
        spread: Show ``± std (n)``; by default when some cell has several seeds (:func:`has_spread`).
    """
    digits = choose_digits(table) if digits is None else digits
    spread = has_spread(table) if spread is None else spread
    bold = bold_cells(table, digits)
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
        metric = metric_label(column)
        width = max(
            [len(cell_text(row, column, digits, spread=spread)) for row in table.rows] + [len(metric)]
        )
        out.add_column(
            _rich_escape(metric)
            if column.metric == column.title
            else f"{title}\n[dim]{_rich_escape(metric)}[/]",
            justify="right",
            min_width=width,
            no_wrap=compact,
        )
    for i, row in enumerate(table.rows):
        cells = []
        for column in table.columns:
            text = cell_text(row, column, digits, spread=spread)
            if (i, column.key) in bold:
                text = f"[bold green]{text}[/]"
            elif row.value(column) is None:
                text = f"[dim]{text}[/]"
            cells.append(text)
        out.add_row(*(_rich_escape(label) for label in row.labels), *cells)
    return out


def to_text(table: ReportTable, *, digits: int | None = None, width: int | None = None) -> str:
    """The rich table as plain text (``.txt``, ``--format table --output FILE``), as wide as it needs."""
    from rich.measure import Measurement

    rendered = to_rich(table, digits=digits)
    if width is None:
        probe = Console(file=io.StringIO(), width=100_000, color_system=None)
        width = max(80, Measurement.get(probe, probe.options, rendered).maximum)
    console = Console(file=io.StringIO(), width=width, color_system=None, force_terminal=False)
    console.print(rendered)
    return console.file.getvalue()  # type: ignore[attr-defined]


def to_markdown(table: ReportTable, *, digits: int | None = None) -> str:
    """A GitHub-flavoured Markdown table, best per column in ``**bold**``; notes below it, then the
    provenance of every cell in a folded ``<details>`` section."""
    digits = choose_digits(table) if digits is None else digits
    spread = has_spread(table)
    bold = bold_cells(table, digits)
    headers = [*table.label_headers, *(_header(c) for c in table.columns)]
    lines = [
        "| " + " | ".join(_md_escape(h) for h in headers) + " |",
        "|" + "|".join([" --- "] * len(table.label_headers) + [" ---: "] * len(table.columns)) + "|",
    ]
    for i, row in enumerate(table.rows):
        cells = [_md_escape(label) for label in row.labels]
        for column in table.columns:
            text = cell_text(row, column, digits, spread=spread)
            cells.append(f"**{text}**" if (i, column.key) in bold else text)
        lines.append("| " + " | ".join(cells) + " |")
    if table.notes:
        lines.append("")
        lines += [f"_{_md_escape(note)}_  " for note in table.notes]
    provenance = provenance_lines(table)
    if provenance:
        lines += ["", "<details><summary>Provenance per cell</summary>", ""]
        head, *body = provenance
        lines += ["| " + " | ".join(head) + " |", "|" + "|".join([" --- "] * len(head)) + "|"]
        lines += ["| " + " | ".join(_md_escape(c) for c in cells) + " |" for cells in body]
        lines += ["", "</details>"]
    return "\n".join(lines) + "\n"


def provenance_lines(table: ReportTable) -> list[list[str]]:
    """A header and one line per filled cell (cells of the same records share a line, their columns
    joined): where the numbers come from. Empty when no row has records."""
    titles = {c.key: c.title for c in table.columns}
    groups: dict[tuple[int, tuple[int, ...]], list[str]] = {}
    cells: dict[tuple[int, tuple[int, ...]], Cell] = {}
    for i, row in enumerate(table.rows):
        for key in [c.key for c in table.columns if c.key in row.cells]:
            cell = row.cells[key]
            group = (i, tuple(id(rec) for rec in cell.records))
            groups.setdefault(group, []).append(titles[key])
            cells[group] = cell
    if not groups:
        return []
    body = []
    for group, shown in groups.items():
        prov = cell_provenance(cells[group])
        body.append(
            [
                " / ".join(_row_name(table.rows[group[0]].labels)),
                ", ".join(shown),
                prov["budget"],
                prov["protocol"],
                f"x{prov['scale']:g}",
                ",".join(str(s) for s in prov["seeds"]),
                ",".join(d[:10] for d in prov["config_digests"]),
                ",".join(prov["package_versions"]),
                ",".join(g[:12] or "none" for g in prov["git_revisions"]),
            ]
        )
    head = [
        " / ".join(_row_name(table.label_headers)),
        "Columns",
        "Budget",
        "Protocol",
        "Scale",
        "Seeds",
        "Config",
    ]
    return [[*head, "saip-bench", "Git"], *body]


def to_latex(table: ReportTable, *, digits: int | None = None) -> str:
    """A booktabs ``table`` float (needs ``\\usepackage{booktabs}``): ``mean $\\pm$ std (n)`` cells, the
    best per column in ``\\textbf`` (ties all bold), a caption naming the protocols, budgets and seeds, and
    each cell's provenance as ``%`` comments above it."""
    digits = choose_digits(table) if digits is None else digits
    spread = has_spread(table)
    bold = bold_cells(table, digits)
    spec = "l" * len(table.label_headers) + "r" * len(table.columns)
    headers = [_latex_escape(h) for h in table.label_headers]
    for column in table.columns:
        metric = _latex_escape(column.metric)
        if column.metric and is_lower_better(column.metric):
            metric += r" $\downarrow$"
        title = _latex_escape(column.title)
        if column.metric == column.title:
            headers.append(metric)
        else:
            headers.append(f"{title} ({metric})" if metric else title)
    lines = [f"% {_comment(table.title)}"]
    provenance = provenance_lines(table)
    if provenance:
        lines.append("% provenance per cell: " + " | ".join(provenance[0]))
        lines += ["% " + _comment(" | ".join(cells)) for cells in provenance[1:]]
    caption = _latex_escape(table.title) + "."
    if table.notes:
        caption += " " + "; ".join(_latex_escape(note) for note in table.notes) + "."
    lines += [
        "\\begin{table}[t]",
        "\\centering",
        f"\\caption{{{caption}}}",
        "\\label{tab:saip-results}",
        f"\\begin{{tabular}}{{{spec}}}",
        "\\toprule",
        " & ".join(headers) + " \\\\",
        "\\midrule",
    ]
    for i, row in enumerate(table.rows):
        cells = [_latex_escape(label) for label in row.labels]
        for column in table.columns:
            if row.value(column) is None:
                cells.append(LATEX_MISSING)
                continue
            text = cell_text(row, column, digits, spread=spread, pm="$\\pm$")
            cells.append(f"\\textbf{{{text}}}" if (i, column.key) in bold else text)
        lines.append(" & ".join(cells) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}", "\\end{table}"]
    return "\n".join(lines) + "\n"


def _row_name(labels: tuple[str, ...]) -> tuple[str, ...]:
    # The labels that tell rows apart: the backbone, and a scale table's dataset, protocol and metric.
    return (labels[0], *labels[2:])


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
    "±": r"$\pm$",
    "↓": r"$\downarrow$",
    "–": "--",
    "×": r"$\times$",
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


def _comment(text: str) -> str:
    # A LaTeX comment ends at the line's end; nothing inside needs escaping.
    return " ".join(text.split())
