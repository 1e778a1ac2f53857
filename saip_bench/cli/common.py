"""What every command shares: consoles, the user-error wrapper, the backbone option's help text."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from saip_bench.errors import SaipError

console = Console()
err_console = Console(stderr=True)

P = ParamSpec("P")
R = TypeVar("R")

BACKBONE_HELP = (
    "Backbone: a checkpoint path (ours, or SAIPv1/MAE/DINO/timm files), [bold]random:NAME[/] "
    "(untrained reference row) or [bold]timm:NAME[/]=PATH (a timm architecture with local weights; "
    "nothing is downloaded)."
)


def fail(message: str) -> typer.Exit:
    """Print one red error line and return the Exit to raise (``raise fail("...")``)."""
    err_console.print(f"[bold red]error:[/] {message}", markup=True, highlight=False, soft_wrap=True)
    return typer.Exit(1)


def user_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn a :class:`SaipError` (bad input, not a bug) into one red line and exit status 1."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except SaipError as err:
            raise fail(str(err)) from None

    return wrapper


def setup_logging(verbose: bool = False) -> None:
    """Route library ``logging`` through rich; INFO by default, DEBUG with --verbose."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=err_console, show_path=False, markup=False)],
        force=True,
    )


def progress_bar() -> Progress:
    """The one progress display of the CLI: description, bar, done/total, elapsed; gone when finished."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )
