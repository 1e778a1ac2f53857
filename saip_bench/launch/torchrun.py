"""This same command on N processes (and M machines) under torchrun: its command line, and running it.

``saip pretrain --nproc-per-node N`` and ``saip evaluate --nproc-per-node N`` relaunch themselves:
:func:`torchrun_argv` turns the command's own arguments into a torchrun command line whose workers run
``python -m saip_bench.cli.<command>`` with the launcher's options taken out, and :func:`run_torchrun` runs
it with this process as torchrun's agent (torchrun's own code, :func:`torch.distributed.run.run`).

Running the agent here rather than in a ``torchrun`` subprocess is what keeps a failure to one line: a
worker's error is already its one red line, and a torchrun process would add a ``ChildFailedError``
traceback under it. Local rank 0 keeps this terminal (its progress bar, its error line); the other local
ranks compute the same thing and write their output to log files, so a user error every rank hits is shown
once. When a rank other than local rank 0 is the one that failed, its last line is shown instead.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from saip_bench.errors import SaipError
from saip_bench.launch.rendezvous import Nodes

#: How a torchrun command line starts (``torchrun`` itself, with this interpreter).
TORCHRUN = (sys.executable, "-m", "torch.distributed.run")

#: The exit status of a worker killed by a signal: 128 + the signal's number, the shell's convention.
SIGNAL_EXIT_BASE = 128

#: Where a worker leaves its exit status for the launcher (:func:`note_worker_exit`).
EXITS_ENV = "SAIP_TORCHRUN_EXITS"


def command_args(argv: Sequence[str], command: str, *, strip: Sequence[str] = ()) -> list[str]:
    """The arguments after ``command`` in ``argv`` (``sys.argv[1:]``), minus the ``strip`` options.

    Each name in ``strip`` is an option taking a value, given as ``--name VALUE`` or ``--name=VALUE``
    (the launcher's own: ``--nproc-per-node``, ``--nnodes``, ...); options before the command name (``-v``)
    belong to the ``saip`` application, not to the command, and are left out.
    """
    args = list(argv)
    if command in args:
        args = args[args.index(command) + 1 :]
    out, skip = [], False
    for arg in args:
        if skip:
            skip = False
            continue
        if arg in strip:
            skip = True
            continue
        if arg.partition("=")[0] in strip and "=" in arg:
            continue
        out.append(arg)
    return out


def torchrun_argv(
    command: str,
    argv: Sequence[str],
    *,
    nproc_per_node: int,
    nodes: Nodes | None = None,
    strip: Sequence[str] = ("--nproc-per-node",),
) -> list[str]:
    """The torchrun command line running ``saip COMMAND`` (as in ``argv``) on every process.

    Args:
        command: the subcommand (``"pretrain"``, ``"evaluate"``); its workers run
            ``python -m saip_bench.cli.<command>``, whose ``_main`` is the command alone.
        argv: this process's arguments (``sys.argv[1:]``).
        nproc_per_node: worker processes on this machine.
        nodes: the machines of a multi-node run; None or one node: ``--standalone`` (a free local port).
        strip: the launcher's options (each taking a value) to leave out of the workers' arguments.

    Returns:
        ``[python, -m, torch.distributed.run, <torchrun options>, -m, saip_bench.cli.<command>, <args>]``.
    """
    if nproc_per_node < 1:
        raise SaipError(f"--nproc-per-node {nproc_per_node}: must be at least 1")
    if nodes is not None and nodes.multi:
        launcher = [
            f"--nnodes={nodes.count}",
            f"--node-rank={nodes.rank}",
            f"--rdzv-endpoint={nodes.endpoint}",
            f"--rdzv-conf=timeout={math.ceil(nodes.timeout_s)}",  # node 0 waits this long for every node
        ]
    else:
        launcher = ["--standalone"]
    worker = ["-m", f"saip_bench.cli.{command}", *command_args(argv, command, strip=strip)]
    return [*TORCHRUN, *launcher, f"--nproc-per-node={nproc_per_node}", "--max-restarts=0", *worker]


@dataclass(frozen=True)
class LaunchResult:
    """How a torchrun launch ended.

    Attributes:
        exit_code: 0 when every worker finished; else the failed worker's exit status (128 + N for a worker
            killed by signal N, and for this process stopped by signal N).
        message: the failed worker's last line when it has not been shown yet (a rank other than local
            rank 0, whose output went to a log file), as ``rank R: ...``; None otherwise.
    """

    exit_code: int
    message: str | None = None


@contextlib.contextmanager
def _agent_quiet() -> Iterator[None]:
    """torchrun's own log records (its OMP_NUM_THREADS note, "failed (exitcode: 1)") only with --verbose."""
    if logging.getLogger().isEnabledFor(logging.DEBUG):
        yield
        return

    def not_torchrun(record: logging.LogRecord) -> bool:
        return not record.name.startswith("torch.distributed") or record.levelno >= logging.CRITICAL

    # torch.distributed has a handler of its own (and does not propagate); the root's serves the rest.
    handlers = [*logging.getLogger("torch.distributed").handlers, *logging.getLogger().handlers]
    for handler in handlers:
        handler.addFilter(not_torchrun)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(not_torchrun)


def _last_line(log_dir: Path, local_rank: int) -> str:
    """The last non-empty line a redirected worker wrote to stderr ("" if none)."""
    for path in sorted(log_dir.glob(f"*/attempt_*/{local_rank}/stderr.log"), reverse=True):
        lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
        if lines:
            return lines[-1]
    return ""


def note_worker_exit(code: object) -> None:
    """In a torchrun worker about to exit with ``code`` (a ``SystemExit`` code): tell the launcher.

    When one rank fails, torchrun stops the others with SIGTERM; local rank 0 may be stopped that way after
    it printed its own error line, and only this note tells the launcher that the line was shown. Nothing is
    done outside :func:`run_torchrun` or on success.
    """
    folder = os.environ.get(EXITS_ENV)
    status = code if isinstance(code, int) else (0 if code is None else 1)
    if folder and status:
        with contextlib.suppress(OSError):
            (Path(folder) / os.environ.get("LOCAL_RANK", "0")).write_text(str(status))


def worker_main(command: Callable[..., Any]) -> None:
    """Entry point of each torchrun worker of ``command`` (``python -m saip_bench.cli.<command> ...``): the
    command alone, taking ``key=value`` overrides, with plain log lines and its exit status noted."""
    import typer

    from saip_bench.cli.common import setup_logging

    setup_logging(False)
    app = typer.Typer(add_completion=False, pretty_exceptions_show_locals=False)
    app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(command)
    try:
        app()
    except SystemExit as done:
        note_worker_exit(done.code)
        raise


def _noted_exit(folder: Path, local_rank: int) -> int:
    try:
        return int((folder / str(local_rank)).read_text())
    except (OSError, ValueError):
        return 0


def _exit_status(exitcode: int) -> int:
    return exitcode if exitcode >= 0 else SIGNAL_EXIT_BASE - exitcode


def run_torchrun(argv: Sequence[str]) -> LaunchResult:
    """Run a :func:`torchrun_argv` command line with this process as torchrun's agent.

    Local rank 0 writes to this process's stdout and stderr as it goes; local ranks 1.. to log files in a
    temporary folder, removed afterwards (they run the same code: their lines repeat rank 0's).

    Returns:
        The exit status, and the failed rank's error line when it was not rank 0's own (see
        :class:`LaunchResult`).

    Raises:
        SaipError: torchrun itself failed (e.g. the rendezvous timed out), as one line.
    """
    if tuple(argv[: len(TORCHRUN)]) != TORCHRUN:
        raise ValueError(f"not a torchrun command line: {' '.join(argv[: len(TORCHRUN)])}")
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    args = list(argv[len(TORCHRUN) :])
    nproc = int(parse_args(args).nproc_per_node)
    log_dir = Path(tempfile.mkdtemp(prefix="saip-torchrun-"))
    exits = log_dir / "exits"
    exits.mkdir()
    extra = [f"--log-dir={log_dir / 'workers'}"]
    if nproc > 1:
        extra.append("--redirects=" + ",".join(f"{r}:3" for r in range(1, nproc)))
    before = os.environ.get(EXITS_ENV)
    os.environ[EXITS_ENV] = str(exits)  # the workers inherit it
    try:
        with _agent_quiet():
            run(parse_args([*extra, *args]))
        return LaunchResult(0)
    except ChildFailedError as err:
        failures = err.failures
        # Local rank 0 failed on its own (maybe stopped by the agent just after): its error is on this
        # terminal already.
        own = [f.exitcode for f in failures.values() if f.local_rank == 0 and f.exitcode > 0]
        shown = _noted_exit(exits, 0) or (own[0] if own else 0)
        if shown:
            return LaunchResult(shown)
        # Local rank 0 finished or was stopped by the agent: name the rank that failed (an error, not a kill).
        rank, failure = min(failures.items(), key=lambda item: (item[1].exitcode <= 0, item[0]))
        code = _exit_status(failure.exitcode)
        line = _last_line(log_dir / "workers", failure.local_rank).removeprefix("error: ")
        line = line or f"exit status {code}"
        return LaunchResult(code, f"rank {rank}: {line}")
    except SignalException as err:  # Ctrl-C / SIGTERM to this process: the agent stopped the workers
        return LaunchResult(SIGNAL_EXIT_BASE + int(err.sigval))
    except Exception as err:  # the rendezvous or the agent: one line, not torchrun's traceback
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise SaipError(f"torchrun: {type(err).__name__}: {first}") from None
    finally:
        if before is None:
            os.environ.pop(EXITS_ENV, None)
        else:
            os.environ[EXITS_ENV] = before
        shutil.rmtree(log_dir, ignore_errors=True)
