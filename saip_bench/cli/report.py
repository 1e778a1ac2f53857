"""``saip report``: the results store as a backbone x dataset table, exported or plotted."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from saip_bench.cli.common import console, fail, user_errors

if TYPE_CHECKING:
    from saip_bench.report.table import ReportTable
    from saip_bench.results.store import ResultsStore

FORMATS = ("table", "markdown", "csv", "latex", "json")


@user_errors
def report(
    *,
    workspace: Annotated[
        Path | None,
        typer.Option(
            help="Workspace whose results.sqlite to read \\[default: $SAIP_WORKSPACE or ./saip-workspace]."
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
    mistyped name never looks like "no results yet".
    """
    from saip_bench.report import (
        build_report_table,
        build_scale_table,
        plot_radar,
        plot_scales,
        render,
    )
    from saip_bench.results import ResultsStore, default_workspace, workspace_db_path

    if fmt not in FORMATS:
        raise fail(f"unknown --format {fmt!r}; valid formats: {', '.join(FORMATS)}")
    if db is not None and workspace is not None:
        raise fail("give --workspace or --db, not both")
    if db is not None:
        if not db.is_file():
            raise fail(f"{db}: no such results database")
        path = db
    else:
        path = workspace_db_path(workspace if workspace is not None else default_workspace())
        if not path.is_file():
            console.print(
                f"[yellow]No results yet[/] ({path} does not exist): run `saip evaluate` or `saip demo`."
            )
            return
    store = ResultsStore(path)
    if store.count() == 0:
        console.print(f"[yellow]No results yet[/] in {path}: run `saip evaluate` or `saip demo`.")
        return
    records = store.query(task=task, dataset=dataset, backbone=backbone, protocol=protocol)
    filters = {"task": task, "dataset": dataset, "backbone": backbone, "protocol": protocol}
    shown = " ".join(f"--{k} {v}" for k, v in filters.items() if v is not None)
    if not records:
        raise fail(f"no results match {shown} in {path}; {_inventory(store)}")

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
    """Print the rich table; when the terminal is too narrow, cut the right-most columns, keep the rest whole.

    rich's own answer to a too-wide table is to squeeze every column until names and numbers break, which
    reads worse than a table whose last datasets are cut off (with a note saying so).
    """
    from rich.measure import Measurement
    from rich.segment import Segment, Segments

    from saip_bench.report.export import rich_min_width, to_rich

    rich_table = to_rich(table, digits=digits)
    natural = Measurement.get(console, console.options.update(max_width=100_000), rich_table).maximum
    if natural <= console.width:
        console.print(rich_table)
        return
    compact = to_rich(table, digits=digits, compact=True)
    needed = rich_min_width(table, digits=digits)
    if needed <= console.width:
        console.print(compact)
        return
    lines = console.render_lines(compact, console.options.update(width=needed), pad=False)
    segments: list[Segment] = []
    for line in lines:
        segments += [*Segment.adjust_line_length(line, console.width, pad=False), Segment.line()]
    console.print(Segments(segments))
    console.print(
        "[yellow]note:[/] the table is wider than this terminal and was cut; widen the window or use "
        "--format markdown / --output FILE"
    )


def _inventory(store: ResultsStore) -> str:
    """A one-line summary of what the store does hold, to point at the mistyped filter."""
    records = store.query()
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
