"""The suite's own pytest-xdist scheduling (``tests/conftest.py``): a test file stays in one worker, and all
of ``tests/slurm/`` stays in one worker, checked on a small suite in a fresh ``pytest -n 2``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

CONFTEST = Path(__file__).with_name("conftest.py")

#: Each test writes ``<its file> <its worker>`` to the log; a module fixture counts its builds.
TEST_FILE = """
import os
from pathlib import Path

import pytest

LOG = Path(os.environ["SCHED_LOG"])


@pytest.fixture(scope="module")
def built():
    with LOG.open("a") as f:
        f.write(f"build {{__name__}} {{os.environ['PYTEST_XDIST_WORKER']}}\\n")


@pytest.mark.parametrize("i", range({n}))
def test_runs(built, i):
    with LOG.open("a") as f:
        f.write(f"run {{__name__}} {{os.environ['PYTEST_XDIST_WORKER']}}\\n")
"""


def test_a_file_and_the_slurm_folder_each_stay_in_one_worker(tmp_path: Path) -> None:
    tests = tmp_path / "tests"
    (tests / "slurm").mkdir(parents=True)
    shutil.copy(CONFTEST, tests / "conftest.py")
    files = ["tests/test_a.py", "tests/test_b.py", "tests/slurm/test_s1.py", "tests/slurm/test_s2.py"]
    for rel in files:
        (tmp_path / rel).write_text(TEST_FILE.format(n=6))
    log = tmp_path / "sched.log"
    args = ["-q", "-n", "2", "-p", "no:cacheprovider", "--import-mode=importlib"]
    result = subprocess.run(
        [sys.executable, "-m", "pytest", *args],
        cwd=tmp_path,
        env={**os.environ, "SCHED_LOG": str(log)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "24 passed" in result.stdout, result.stdout
    lines = [line.split() for line in log.read_text().splitlines()]
    workers: dict[str, set[str]] = {}
    for _kind, module, worker in lines:
        workers.setdefault(module, set()).add(worker)
    builds = [module for kind, module, _ in lines if kind == "build"]
    assert len(builds) == len(set(builds)) == 4, builds  # each module fixture once
    assert all(len(w) == 1 for w in workers.values()), workers  # each file in one worker
    slurm = {w for module, ws in workers.items() if "test_s" in module for w in ws}
    assert len(slurm) == 1, workers  # tests/slurm/ in one worker
