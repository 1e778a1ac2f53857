"""What every command shares: consoles, the user-error wrapper, the backbone option's help text."""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from saip_bench.errors import Interrupted, SaipError
from saip_bench.io import disk_fault

console = Console()
err_console = Console(stderr=True)

P = ParamSpec("P")
R = TypeVar("R")

BACKBONE_HELP = (
    "Backbone: a checkpoint path (ours, or SAIPv1/MAE/DINO/timm/OpenMMLab files), [bold]random:NAME[/] "
    "(untrained reference row, initialised with the run's seed; random:NAME@SEED: with SEED) or "
    "[bold]timm:NAME[/]=PATH (a timm architecture with local weights; nothing is downloaded)."
)


def fail(message: str) -> typer.Exit:
    """Print one red error line and return the Exit to raise (``raise fail("...")``)."""
    err_console.print(f"[bold red]error:[/] {message}", markup=True, highlight=False, soft_wrap=True)
    return typer.Exit(1)


#: The exit status of a run stopped by Ctrl-C or SIGTERM (128 + SIGINT, the shell's convention).
INTERRUPTED_EXIT = 130


def user_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn a :class:`SaipError` (bad input, not a bug) into one red line and exit status 1.

    An interrupted run (:class:`~saip_bench.errors.Interrupted`, or a Ctrl-C outside a training loop) is one
    line too, with exit status :data:`INTERRUPTED_EXIT`.

    A disk fault (an OSError saying read-only, full, over quota or permission denied, as listed in
    :data:`saip_bench.io.DISK_FAULTS`) is not a bug either: one line naming the path and the fault. Other
    OSErrors stay tracebacks.
    """

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except Interrupted as err:  # SIGINT/SIGTERM: the step finished and was saved; 128 + SIGINT
            fail(str(err))
            raise typer.Exit(INTERRUPTED_EXIT) from None
        except KeyboardInterrupt:  # a second Ctrl-C, or one before a training loop took over the signal
            fail("interrupted")
            raise typer.Exit(INTERRUPTED_EXIT) from None
        except SaipError as err:
            raise fail(str(err)) from None
        except OSError as err:
            message = disk_fault(err)
            if message is None:
                raise
            raise fail(message) from None

    return wrapper


#: The library's step-line logger (``saip_bench.engine.logging.PROGRESS_LOGGER``; not imported from there
#: because that would load torch for every ``--help``).
PROGRESS_LOGGER = "saip_bench.progress"


def draws_bars() -> bool:
    """Whether stdout is a terminal: progress bars there; a file (a Slurm ``.out``) gets plain lines."""
    return console.is_terminal


class _PlainHandler(logging.Handler):
    """One plain ``time level message`` line per record on the current ``sys.stderr`` (no wrapping)."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except Exception:
            self.handleError(record)


def _not_progress(record: logging.LogRecord) -> bool:
    return not record.name.startswith(PROGRESS_LOGGER)


def setup_logging(verbose: bool = False) -> None:
    """Route library ``logging`` to stderr; INFO by default, DEBUG with --verbose.

    On a terminal the records go through rich, and the training step lines are left to the progress bar (the
    run's ``train.log`` still holds them); into a file every record is one plain line, step lines included,
    so a Slurm ``.out`` file shows the training progress.
    """
    if err_console.is_terminal:
        handler: logging.Handler = RichHandler(console=err_console, show_path=False, markup=False)
    else:
        handler = _PlainHandler()
    if draws_bars():
        handler.addFilter(_not_progress)
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO, format="%(message)s", handlers=[handler], force=True
    )


def progress_bar() -> Progress:
    """The one progress display of the CLI: description, bar, done/total, elapsed; gone when finished.

    Disabled when stdout is not a terminal: a bar drawn into a file is only noise there.
    """
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not draws_bars(),
    )
