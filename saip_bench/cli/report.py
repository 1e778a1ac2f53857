"""``saip report``: the results store as a backbone x dataset table, exported or plotted."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from saip_bench.cli.common import console, fail, user_errors

if TYPE_CHECKING:
    from saip_bench.report.table import ReportTable
    from saip_bench.results.record import EvalRecord

FORMATS = ("table", "markdown", "csv", "latex", "json")
SEED_MODES = ("all", "latest")
#: ``--output`` extensions that mean a chart rather than a table.
PLOT_SUFFIXES = (".png", ".pdf", ".svg")


@user_errors
def report(
    *,
    workspace: Annotated[
        Path | None,
        typer.Option(
            help="Workspace whose results (results.sqlite and record files) to read "
            "\\[default: $SAIP_WORKSPACE or ./saip-workspace]."
        ),
    ] = None,
    db: Annotated[
        Path | None, typer.Option(help="Read this results database file instead of a workspace's.")
    ] = None,
    task: Annotated[str | None, typer.Option(help="Only this task (e.g. reid, attribute).")] = None,
    dataset: Annotated[
        str | None,
        typer.Option(help="Only this dataset (e.g. crowdhuman), in full: every recorded metric as a column."),
    ] = None,
    backbone: Annotated[
        str | None, typer.Option(help="Only this backbone: its name, or a digest prefix.")
    ] = None,
    protocol: Annotated[
        str | None, typer.Option(help="Only this protocol (finetune, linear, frozen).")
    ] = None,
    budget: Annotated[str | None, typer.Option(help="Only this budget (full, short, smoke).")] = None,
    metric: Annotated[
        list[str] | None,
        typer.Option(
            help="What the columns show instead of the primary metric: a metric name (R1), or TASK:NAME / "
            "DATASET:NAME for one task's or dataset's columns (reid:R1, crowdhuman:MR-2); repeatable."
        ),
    ] = None,
    seeds: Annotated[
        str,
        typer.Option(
            help="all: each cell is the mean ± std over its seeds (the latest run of each); "
            "latest: only the cell's latest run."
        ),
    ] = "all",
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format",
            help="Output format: table, markdown, csv, latex or json \\[default: from --output's extension "
            "(.txt .md .csv .tex .json), else table].",
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            help="Write the report to this file instead of the terminal; .png/.pdf/.svg draws the chart."
        ),
    ] = None,
    records_out: Annotated[
        Path | None,
        typer.Option(
            "--records",
            help="Also write every record behind the table, with its run directory, to this .csv or .json.",
        ),
    ] = None,
    plot: Annotated[
        list[Path] | None,
        typer.Option(
            help="Also draw a chart (.png/.pdf/.svg; repeatable): the radar, or metric vs scale (--scales)."
        ),
    ] = None,
    chart: Annotated[
        str, typer.Option(help="Which chart --plot draws: auto, radar, bars or scales.")
    ] = "auto",
    scales: Annotated[
        bool, typer.Option("--scales", help="Show the metric against input scale instead.")
    ] = False,
    all_datasets: Annotated[
        bool, typer.Option("--all-datasets", help="Show all 12 dataset columns, also those without results.")
    ] = False,
    digits: Annotated[
        int | None,
        typer.Option(
            min=0, max=8, help="Decimals shown \\[default: 2, or 4 when every value is a fraction]."
        ),
    ] = None,
) -> None:
    """Show stored results: backbones (rows) x datasets (columns), mean ± std over seeds, best highlighted.

    An empty store prints a note and exits 0. Filters that match nothing are an error (exit 1), so a
    mistyped name never looks like "no results yet"; so are a metric no record has and an output file that
    cannot be written, checked before anything is written. A workspace's record files (what evaluation jobs
    write) are ingested into its store first; on read-only media they are read without writing anything.
    """
    from saip_bench.report import build_report_table, build_scale_table, render
    from saip_bench.report.detail import build_detail_table
    from saip_bench.report.export import format_for
    from saip_bench.report.metrics import check_choices
    from saip_bench.report.plots import PLOT_KINDS
    from saip_bench.report.provenance import RECORD_WRITERS, table_records
    from saip_bench.results import ResultsStore, default_workspace, workspace_db_path, workspace_records
    from saip_bench.results.files import records_dir

    if fmt is not None and fmt not in FORMATS:
        raise fail(f"unknown --format {fmt!r}; valid formats: {', '.join(FORMATS)}")
    if seeds not in SEED_MODES:
        raise fail(f"unknown --seeds {seeds!r}; valid modes: {', '.join(SEED_MODES)}")
    if chart not in PLOT_KINDS:
        raise fail(f"unknown --chart {chart!r}; valid charts: {', '.join(PLOT_KINDS)}")
    if db is not None and workspace is not None:
        raise fail("give --workspace or --db, not both")
    plots = list(plot or [])
    chart_only = output is not None and output.suffix.lower() in PLOT_SUFFIXES and fmt is None
    if chart_only:
        plots.insert(0, output)  # type: ignore[arg-type]  # the chart is the report
        output = None
    elif output is not None:
        fmt = fmt or format_for(output)
    fmt = fmt or "table"
    if records_out is not None and records_out.suffix.lower() not in RECORD_WRITERS:
        raise fail(f"--records {records_out}: must end in {' or '.join(RECORD_WRITERS)}")
    for target in [p for p in (output, records_out) if p is not None] + plots:
        _check_writable(target)

    ws: Path | None = None
    if db is not None:
        if not db.is_file():
            raise fail(f"{db}: no such results database")
        path = db
        every = ResultsStore(path, read_only=True).query()  # a --db file alone is only read
    else:
        ws = workspace if workspace is not None else default_workspace()
        path = workspace_db_path(ws)
        if not path.is_file() and not records_dir(ws).is_dir():
            console.print(
                f"[yellow]No results yet[/] ({path} does not exist): run `saip evaluate` or `saip demo`."
            )
            return
        every = workspace_records(ws)
    if not every:
        console.print(f"[yellow]No results yet[/] in {path}: run `saip evaluate` or `saip demo`.")
        return
    filters = {"task": task, "dataset": dataset, "backbone": backbone, "protocol": protocol}
    records = [rec for rec in every if rec.matches(**filters) and budget in (None, rec.budget)]
    shown = " ".join(f"--{k} {v}" for k, v in {**filters, "budget": budget}.items() if v is not None)
    if not records:
        raise fail(f"no results match {shown} in {path}; {_inventory(every)}")
    choices = list(metric or [])
    check_choices(records, choices)

    if scales:
        table = build_scale_table(records, metric=choices or None, seeds=seeds)
    elif dataset is not None:
        names = [_choice_name(c) for c in choices] or None
        table = build_detail_table(records, dataset, metrics=names, seeds=seeds)
    else:
        table = build_report_table(records, all_datasets=all_datasets, metric=choices or None, seeds=seeds)
    if table.is_empty:
        if scales:
            raise fail(
                f"no results at an input scale other than 1 in {path}; run `saip evaluate ... --scales`"
            )
        raise fail(f"no results at input scale 1 match {shown or 'the store'}; try --scales")
    pictured = table
    if plots:
        from saip_bench.report.plots import chart_kind

        if dataset is not None and not scales:
            # A detail view's columns are metrics: its chart is the dataset as the main table shows it.
            pictured = build_report_table(records, metric=choices or None, seeds=seeds)
        chart_kind(pictured, chart)  # a chart that does not fit the table fails before anything is written

    if output is not None:
        from saip_bench.io import atomic_write_text

        atomic_write_text(output, render(table, fmt, digits=digits))
        console.print(f"wrote {fmt} report to {output}", highlight=False)
    elif chart_only:
        pass
    elif fmt == "table":
        print_report_table(table, digits)
    else:
        typer.echo(render(table, fmt, digits=digits), nl=False)

    if records_out is not None:
        from saip_bench.io import atomic_write_text

        behind = table_records(table)
        atomic_write_text(records_out, RECORD_WRITERS[records_out.suffix.lower()](behind, ws))
        console.print(f"wrote {len(behind)} records to {records_out}", highlight=False)
    if plots:
        from saip_bench.report.plots import plot as draw

        for written in draw(pictured, plots, chart):
            console.print(f"wrote plot to {written}", highlight=False)


def _choice_name(choice: str) -> str:
    """The metric name of a ``--metric`` choice in a one-dataset view (``crowdhuman:JI`` -> ``JI``)."""
    from saip_bench.report.metrics import scopes

    prefix, sep, name = choice.partition(":")
    return name if sep and prefix in scopes() else choice


def _check_writable(target: Path) -> None:
    """One error line, before anything is written, for an output whose folder is missing or read-only."""
    from saip_bench.io import require_writable

    if not target.parent.is_dir():
        raise fail(f"{target}: folder {target.parent} does not exist")
    try:
        require_writable(target.parent)
    except OSError as err:
        err.filename = str(target)  # the line names the file asked for
        raise


def print_report_table(table: ReportTable, digits: int | None = None) -> None:
    """Print the rich table; when it is wider than the terminal, print its dataset columns in groups that fit.

    rich's own answer to a too-wide table is to squeeze or crop columns until names and numbers break; a wide
    table is instead wrapped like a wide data frame: every group repeats the backbone labels.
    """
    import dataclasses

    from rich.measure import Measurement

    from saip_bench.report.export import choose_digits, has_spread, to_rich

    # One precision and one cell style for the whole table: a group whose values happen to be small
    # percentages (AP 0.27) must not switch to the 4 decimals of fraction-valued tables, nor a group of
    # single-seed cells drop the (n) the others show.
    digits = choose_digits(table) if digits is None else digits
    spread = has_spread(table)

    def width(columns: list) -> int:
        part = dataclasses.replace(table, columns=columns, notes=[])
        rendered = to_rich(part, digits=digits, spread=spread)
        return Measurement.get(console, console.options.update(max_width=100_000), rendered).maximum

    groups: list[list] = [[]]
    for column in table.columns:
        if groups[-1] and width([*groups[-1], column]) > console.width:
            groups.append([])
        groups[-1].append(column)
    for i, columns in enumerate(groups):
        part = dataclasses.replace(table, columns=columns, title=table.title if i == 0 else "", notes=[])
        console.print(to_rich(part, digits=digits, spread=spread, compact=width(columns) > console.width))
    for note in table.notes:  # under the last group, at the terminal's width rather than the group's
        console.print(note, style="dim", highlight=False)


def _inventory(records: list[EvalRecord]) -> str:
    """A one-line summary of what the store does hold, to point at the mistyped filter."""
    parts = []
    for name, attr in (
        ("tasks", "task"),
        ("datasets", "dataset"),
        ("backbones", "backbone_name"),
        ("protocols", "protocol"),
        ("budgets", "budget"),
    ):
        values = sorted({getattr(r, attr) for r in records})
        parts.append(f"{name}: {', '.join(values)}")
    return "it holds " + "; ".join(parts)
