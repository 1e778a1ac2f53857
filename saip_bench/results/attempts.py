"""The attempts of one evaluation run: what makes a resumed record's ``duration_s`` the total of all of them.

A run directory holds ``attempts.json``, one entry per ``saip evaluate`` call that worked on it::

    [{"started_at": "...", "start_unix": 1.7e9, "seconds": 51.2, "status": "interrupted"},
     {"started_at": "...", "start_unix": 1.7e9, "seconds": 40.8, "status": "done"}]

An attempt killed without warning (SIGKILL, a lost node) never writes its end; the next attempt closes it
with the time its last checkpoint was written (the ``last.pt`` modification time), a lower bound of how long
it ran. Before a run starts, :func:`prepare_run_dir` refuses to silently overwrite an unfinished run's
checkpoint: without ``--resume`` or ``--force`` that is an error naming the file.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from saip_bench.errors import ConfigError, Interrupted
from saip_bench.io import atomic_write_json
from saip_bench.results.record import utc_now_iso

log = logging.getLogger(__name__)

ATTEMPTS_FILE = "attempts.json"
CHECKPOINT_FILE = "last.pt"
#: What ``--force`` removes so that a run starts over: the engine's checkpoints, history and the attempts.
STALE_FILES = (CHECKPOINT_FILE, "best.pt", "history.json", ATTEMPTS_FILE)


def prepare_run_dir(run_dir: Path, *, resume: bool, force: bool, write: bool = True) -> bool:
    """Check an unrecorded run's folder before it runs; return whether it resumes a checkpoint.

    Args:
        run_dir: the run's folder (it may not exist yet).
        resume: ``--resume``: continue from ``last.pt`` when there is one.
        force: ``--force``: start over, removing :data:`STALE_FILES`.
        write: whether this process removes files (rank 0 only under torchrun).

    Raises:
        ConfigError: both flags, or ``last.pt`` exists and neither flag was given.
    """
    checkpoint = Path(run_dir) / CHECKPOINT_FILE
    if resume and force:
        raise ConfigError("--resume continues a run and --force starts it over: pass one of them")
    if force:
        if write:
            for name in STALE_FILES:
                (Path(run_dir) / name).unlink(missing_ok=True)
        return False
    if checkpoint.is_file() and not resume:
        raise ConfigError(
            f"{checkpoint}: an unfinished run's checkpoint; "
            "pass --resume to continue it or --force to start over"
        )
    return resume and checkpoint.is_file()


class Attempts:
    """Context manager around one attempt of a run: appends it to ``attempts.json`` and times it.

    Args:
        run_dir: the run's folder.
        resume: keep the earlier attempts (a resumed run); otherwise the log starts afresh.
        write: whether this process writes the file (rank 0 only under torchrun).

    Attributes:
        entries: every attempt so far, this one last.
    """

    def __init__(self, run_dir: Path, *, resume: bool, write: bool = True) -> None:
        self.path = Path(run_dir) / ATTEMPTS_FILE
        self.resume, self.write = resume, write
        self.entries: list[dict[str, Any]] = []
        self._t0 = 0.0

    def __enter__(self) -> Attempts:
        if self.resume and self.path.is_file():
            try:
                self.entries = list(json.loads(self.path.read_text(encoding="utf-8")))
            except (OSError, ValueError, TypeError) as err:
                log.warning("%s: unreadable (%s); earlier attempts are not counted", self.path, err)
        checkpoint = self.path.parent / CHECKPOINT_FILE
        for entry in self.entries:
            if entry.get("status") == "running":  # ended without a word: it lasted until its last save
                saved = checkpoint.stat().st_mtime if checkpoint.is_file() else 0.0
                entry.update(status="killed", seconds=max(0.0, saved - float(entry.get("start_unix", saved))))
        self.entries.append(
            {"started_at": utc_now_iso(), "start_unix": time.time(), "seconds": 0.0, "status": "running"}
        )
        self._save()
        self._t0 = time.perf_counter()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
        status = "done" if err is None else "interrupted" if isinstance(err, Interrupted) else "failed"
        self.entries[-1].update(seconds=time.perf_counter() - self._t0, status=status)
        self._save()

    @property
    def started_at(self) -> str:
        """When the first attempt started."""
        return str(self.entries[0]["started_at"])

    @property
    def total_s(self) -> float:
        """Seconds of every attempt together (the current one as of its end)."""
        return float(sum(float(entry.get("seconds", 0.0)) for entry in self.entries))

    def _save(self) -> None:
        if self.write:
            atomic_write_json(self.path, self.entries)
