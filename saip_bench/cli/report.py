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
    dataset: Annotated[str | None, typer.Option(help="Only this dataset (e.g. market1501).")] = None,
    backbone: Annotated[
        str | None, typer.Option(help="Only this backbone: its name, or a digest prefix.")
    ] = None,
    protocol: Annotated[
        str | None, typer.Option(help="Only this protocol (finetune, linear, frozen).")
    ] = None,
    fmt: Annotated[
        str, typer.Option("--format", help="Output format: table, markdown, csv, latex or json.")
    ] = "table",
    output: Annotated[
        Path | None, typer.Option(help="Write the report to this file instead of the terminal.")
    ] = None,
    plot: Annotated[
        Path | None,
        typer.Option(
            help="Also draw a chart (.png/.pdf/.svg): the 12-dataset radar, or metric vs scale with --scales."
        ),
    ] = None,
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
    """Show stored results: backbones (rows) x datasets (columns), best per column highlighted.

    An empty store prints a note and exits 0. Filters that match nothing are an error (exit 1), so a
    mistyped name never looks like "no results yet". A workspace's record files (what evaluation jobs
    write) are ingested into its store first; on read-only media they are read without writing anything.
    """
    from saip_bench.report import (
        build_report_table,
        build_scale_table,
        plot_radar,
        plot_scales,
        render,
    )
    from saip_bench.results import ResultsStore, default_workspace, workspace_db_path, workspace_records
    from saip_bench.results.files import records_dir

    if fmt not in FORMATS:
        raise fail(f"unknown --format {fmt!r}; valid formats: {', '.join(FORMATS)}")
    if db is not None and workspace is not None:
        raise fail("give --workspace or --db, not both")
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
    records = [rec for rec in every if rec.matches(**filters)]
    shown = " ".join(f"--{k} {v}" for k, v in filters.items() if v is not None)
    if not records:
        raise fail(f"no results match {shown} in {path}; {_inventory(every)}")

    table = build_scale_table(records) if scales else build_report_table(records, all_datasets=all_datasets)
    if table.is_empty:
        if scales:
            raise fail(
                f"no results at an input scale other than 1 in {path}; run `saip evaluate ... --scales`"
            )
        raise fail(f"no results at input scale 1 match {shown or 'the store'}; try --scales")

    if output is not None:
        from saip_bench.io import atomic_write_text

        atomic_write_text(output, render(table, fmt, digits=digits))
        console.print(f"wrote {fmt} report to {output}", highlight=False)
    elif fmt == "table":
        print_report_table(table, digits)
    else:
        typer.echo(render(table, fmt, digits=digits), nl=False)

    if plot is not None:
        written = plot_scales(table, plot) if scales else plot_radar(table, plot)
        console.print(f"wrote plot to {written}", highlight=False)


def print_report_table(table: ReportTable, digits: int | None = None) -> None:
    """Print the rich table; when it is wider than the terminal, print its dataset columns in groups that fit.

    rich's own answer to a too-wide table is to squeeze or crop columns until names and numbers break; a wide
    table is instead wrapped like a wide data frame: every group repeats the backbone labels.
    """
    import dataclasses

    from rich.measure import Measurement

    from saip_bench.report.export import choose_digits, to_rich

    # One precision for the whole table: a group whose values happen to be small percentages (AP 0.27)
    # must not switch to the 4 decimals of fraction-valued tables.
    digits = choose_digits(table) if digits is None else digits

    def width(columns: list) -> int:
        part = dataclasses.replace(table, columns=columns)
        rendered = to_rich(part, digits=digits)
        return Measurement.get(console, console.options.update(max_width=100_000), rendered).maximum

    groups: list[list] = [[]]
    for column in table.columns:
        if groups[-1] and width([*groups[-1], column]) > console.width:
            groups.append([])
        groups[-1].append(column)
    for i, columns in enumerate(groups):
        part = dataclasses.replace(
            table,
            columns=columns,
            title=table.title if i == 0 else "",
            notes=table.notes if i == len(groups) - 1 else [],
        )
        console.print(to_rich(part, digits=digits, compact=width(columns) > console.width))


def _inventory(records: list[EvalRecord]) -> str:
    """A one-line summary of what the store does hold, to point at the mistyped filter."""
    parts = []
    for name, attr in (
        ("tasks", "task"),
        ("datasets", "dataset"),
        ("backbones", "backbone_name"),
        ("protocols", "protocol"),
    ):
        values = sorted({getattr(r, attr) for r in records})
        parts.append(f"{name}: {', '.join(values)}")
    return "it holds " + "; ".join(parts)
