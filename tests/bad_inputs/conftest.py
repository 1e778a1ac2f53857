"""The bad-input table's harness: run the real CLI in a fresh process and check that it refused cleanly.

A clean refusal (issue 14): a non-zero exit, no traceback, at most three lines of output, the offending file
named where there is one, and nothing half-written: the folders the command may write (workspace, output,
data root) are byte-identical to before, except for log files named in ``allow``.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

SAIP = str(Path(sys.executable).with_name("saip"))


@dataclass
class CliRun:
    """One finished CLI call: exit code and its stdout + stderr as one text."""

    args: list[str]
    returncode: int
    output: str

    @property
    def lines(self) -> list[str]:
        return [line for line in self.output.splitlines() if line.strip()]


def run_saip(
    args: Sequence[str], *, cwd: Path, timeout: float = 300, env: dict[str, str] | None = None
) -> CliRun:
    """``saip ARGS`` in a fresh process (one thread, wide console so a line is not wrapped)."""
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "400", "NO_COLOR": "1", **(env or {})}
    proc = subprocess.run(
        [SAIP, *map(str, args)], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout
    )
    return CliRun(list(map(str, args)), proc.returncode, proc.stdout + proc.stderr)


def snapshot(*roots: Path) -> dict[str, str]:
    """Every file (and folder) under ``roots``, by path, with a digest of its bytes."""
    state: dict[str, str] = {}
    for root in roots:
        if not root.exists():
            state[str(root)] = "<absent>"
            continue
        for path in sorted([root, *root.rglob("*")]):
            if path.is_dir():
                state[str(path)] = "<dir>"
            else:
                state[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return state


def assert_clean_refusal(
    run: CliRun,
    *,
    names: Iterable[str] = (),
    before: dict[str, str] | None = None,
    after_roots: Sequence[Path] = (),
    allow: Iterable[str] = (),
) -> None:
    """The issue's four conditions for one bad input.

    Args:
        run: the CLI call.
        names: strings the error must contain (the offending file's name, the fault).
        before: :func:`snapshot` of ``after_roots`` taken before the call; compared with the state after.
        after_roots: the folders the command may write.
        allow: file names (not paths) that may appear or change (a log file).
    """
    assert run.returncode != 0, f"exit 0 for bad input: {run.args}\n{run.output}"
    assert "Traceback" not in run.output, f"traceback for {run.args}:\n{run.output}"
    assert len(run.lines) <= 3, f"{len(run.lines)} lines for {run.args}:\n{run.output}"
    for name in names:
        assert name in run.output, f"{name!r} not named for {run.args}:\n{run.output}"
    if before is not None:
        after = snapshot(*after_roots)
        allowed = set(allow)
        changed = {
            path
            for path in set(before) | set(after)
            if before.get(path) != after.get(path) and Path(path).name not in allowed
        }
        assert not changed, f"left behind or changed by {run.args}: {sorted(changed)}"


@pytest.fixture
def saip_run():
    """The harness as a fixture: ``saip_run(args, cwd=...)``."""
    return run_saip


@pytest.fixture
def refused():
    """:func:`assert_clean_refusal` as a fixture (test files cannot import a conftest by name)."""
    return assert_clean_refusal


@pytest.fixture
def snap():
    """:func:`snapshot` as a fixture."""
    return snapshot
