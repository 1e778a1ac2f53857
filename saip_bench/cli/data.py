"""``saip data synth`` and ``saip data check``: synthetic datasets in the real formats, and dataset checks."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from saip_bench.cli.common import console, fail, progress_bar, user_errors

app = typer.Typer(no_args_is_help=True, rich_markup_mode="rich")

_STATUS_STYLE = {"found": "green", "missing": "dim", "malformed": "bold red", "not yet supported": "yellow"}


@app.command("synth")
@user_errors
def synth(
    *,
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            help="Dataset format to write (e.g. [bold]market1501[/], [bold]lup[/]) or [bold]all[/].",
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(
            help="Data root: each dataset goes to DIR/<its usual folder>, where `data check` finds it."
        ),
    ],
    ids: Annotated[int, typer.Option(min=1, help="Number of identities.")] = 16,
    images: Annotated[int, typer.Option(min=1, help="Number of images per dataset.")] = 160,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same files).")] = 0,
    overwrite: Annotated[
        bool,
        typer.Option(
            help="Replace dataset folders that already exist (without it, [bold]all[/] keeps them and "
            "writes the missing ones; a single format that exists is an error)."
        ),
    ] = False,
) -> None:
    """Write synthetic datasets in the exact on-disk format of the real ones."""

    from saip_bench.data_check import resolve_formats, write_synth_dataset
    from saip_bench.io import undo_on_error

    supported, unsupported = resolve_formats(fmt)
    if not supported:
        raise fail("no synthetic format is supported yet")
    kept = [] if overwrite else [info for info in supported if (out / info.folder).exists()]
    if kept and fmt != "all":  # the one format asked for is there: refuse rather than keep it silently
        raise fail(f"{out / kept[0].folder}: already exists; choose another --out or pass --overwrite")
    # `all` fills a data root in (datasets are added to it one by one, e.g. LUP for pretraining first):
    # what is there is kept, as it may be a real dataset, and only the missing folders are written.
    supported = [info for info in supported if info not in kept]
    written: list[tuple[str, Path]] = []
    # Each dataset is written beside its place and renamed when complete; a failure (a full disk) also
    # takes back the datasets this call already wrote, and the data root if this call created it.
    with progress_bar() as progress, undo_on_error(out):
        task = progress.add_task("synthetic data", total=len(supported))
        for info in supported:
            progress.update(task, description=f"writing {info.name}")
            path = write_synth_dataset(info, out, ids=ids, images=images, seed=seed, overwrite=overwrite)
            written.append((info.name, path))
            progress.advance(task)
    for name, path in written:
        console.print(f"[green]wrote[/] {name:<15} {path}", highlight=False)
    for info in kept:
        console.print(
            f"[yellow]kept[/]  {info.name:<15} {out / info.folder} (exists; --overwrite replaces it)",
            highlight=False,
        )
    if unsupported:
        names = ", ".join(info.name for info in unsupported)
        console.print(f"[yellow]not yet supported:[/] {names}", highlight=False)


def _parse_overrides(items: list[str]) -> dict[str, Path]:
    overrides: dict[str, Path] = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise fail(f"--dataset {item!r}: expected NAME=PATH, e.g. market1501=/data/Market-1501-v15.09.15")
        overrides[name.strip()] = Path(path)
    return overrides


@app.command("check")
@user_errors
def check(
    *,
    root: Annotated[
        Path | None, typer.Option(help="Data root holding datasets under their usual folder names.")
    ] = None,
    dataset: Annotated[
        list[str] | None,
        typer.Option("--dataset", help="NAME=PATH: check this folder for dataset NAME (repeatable)."),
    ] = None,
) -> None:
    """Find and validate the 12 datasets; one table of found / missing / malformed / not yet supported."""
    from rich.table import Table

    from saip_bench.data_check import check_datasets

    overrides = _parse_overrides(dataset or [])
    if root is None and not overrides:
        raise fail("give --root DIR and/or --dataset NAME=PATH")
    statuses = check_datasets(root, overrides)

    table = Table(title=f"Datasets under {root}" if root is not None else "Datasets", caption_justify="left")
    table.add_column("dataset", style="bold", no_wrap=True)
    table.add_column("task")
    table.add_column("status", no_wrap=True)
    table.add_column("counts found / official; first problem or note", overflow="fold")
    for st in statuses:
        counts = ", ".join(
            f"{k} {v:,}" + (f"/{st.official[k]:,}" if k in st.official else "") for k, v in st.counts.items()
        )
        detail = st.problem or "; ".join(st.notes)
        if st.status == "missing" and not detail and st.path is not None:
            detail = f"looked for {st.path}"
        lines = [_escape(counts)] if counts else []
        if detail:
            lines.append(f"[{'red' if st.problem else 'dim'}]{_escape(detail)}[/]")
        table.add_row(st.title, st.task, f"[{_STATUS_STYLE[st.status]}]{st.status}[/]", "\n".join(lines))
    found = sum(st.status == "found" for st in statuses)
    bad = [st for st in statuses if not st.ok]
    table.caption = (
        f"{found} found, {len(bad)} malformed, {len(statuses) - found - len(bad)} missing or unsupported"
    )
    console.print(table)
    # The full problem once more, unwrapped, so a long path can be copied from the terminal.
    for st in bad:
        console.print(
            f"[bold red]{st.title}:[/] {_escape(st.problem or '')}", soft_wrap=True, highlight=False
        )
    if bad:
        raise typer.Exit(1)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)
