"""Suite-wide test settings."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """One intra-op thread: the tests use tiny tensors, where a thread pool costs more than it gains, and on
    a loaded 2-core machine torch's pool was measured 4-60x slower than one thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


#: Most pytest-xdist workers ``-n auto`` starts. Measured with 2 on a 2-core machine (the suite in 850-890 s
#: instead of 1432 s); more have not been tried.
MAX_WORKERS = 4


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto`` (pyproject's addopts): one worker per core, at most :data:`MAX_WORKERS`."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(cores, MAX_WORKERS))


def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object | None:
    """pytest-xdist's ``load`` mode, by test file: a file runs in one worker, so its module-scoped fixtures (a
    demo run, 12 synthetic datasets) are built once; and every file under ``tests/slurm/`` runs in one
    worker, so the session starts one real Slurm cluster, not one per worker. (``--dist loadgroup`` would say
    this with markers, but with pytest 9.2 it groups nothing: it renames ``item._nodeid``, which pytest no
    longer reads.) Another ``--dist`` mode is left to xdist."""
    if config.getvalue("dist") != "load":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class FileOrSlurmScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return "tests/slurm/" if path.startswith("tests/slurm/") else path

    return FileOrSlurmScheduling(config, log)
