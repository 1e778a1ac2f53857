"""A run directory's attempts: a stale checkpoint refused, ``--force``, the total time of all attempts."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from saip_bench.errors import ConfigError, Interrupted
from saip_bench.results.attempts import ATTEMPTS_FILE, Attempts, prepare_run_dir


def test_an_unfinished_checkpoint_needs_resume_or_force(tmp_path: Path) -> None:
    assert prepare_run_dir(tmp_path / "new", resume=False, force=False) is False
    (tmp_path / "last.pt").write_bytes(b"x")
    (tmp_path / "history.json").write_text("[]")
    with pytest.raises(
        ConfigError, match=r"last\.pt: .*pass --resume to continue it or --force to start over"
    ):
        prepare_run_dir(tmp_path, resume=False, force=False)
    with pytest.raises(ConfigError, match="pass one of them"):
        prepare_run_dir(tmp_path, resume=True, force=True)
    assert prepare_run_dir(tmp_path, resume=True, force=False) is True
    assert prepare_run_dir(tmp_path, resume=False, force=True, write=False) is False
    assert (tmp_path / "last.pt").is_file()  # only the writing rank removes
    assert prepare_run_dir(tmp_path, resume=False, force=True) is False
    assert not (tmp_path / "last.pt").exists() and not (tmp_path / "history.json").exists()


def test_attempts_add_up_across_an_interruption_and_a_kill(tmp_path: Path) -> None:
    with pytest.raises(Interrupted), Attempts(tmp_path, resume=False):
        time.sleep(0.01)
        raise Interrupted("stop")
    # A second attempt dies without a word (SIGKILL): its entry stays "running" ...
    killed = json.loads((tmp_path / ATTEMPTS_FILE).read_text())
    killed.append({"started_at": "t", "start_unix": time.time() - 5.0, "seconds": 0.0, "status": "running"})
    (tmp_path / ATTEMPTS_FILE).write_text(json.dumps(killed))
    (tmp_path / "last.pt").write_bytes(b"x")  # ... after writing its last checkpoint
    with Attempts(tmp_path, resume=True) as attempts:
        time.sleep(0.01)
    statuses = [entry["status"] for entry in attempts.entries]
    assert statuses == ["interrupted", "killed", "done"]
    seconds = [entry["seconds"] for entry in attempts.entries]
    assert seconds[0] >= 0.01 and seconds[1] >= 4.0 and seconds[2] >= 0.01
    assert attempts.total_s == pytest.approx(sum(seconds))
    assert attempts.started_at == attempts.entries[0]["started_at"]
    assert json.loads((tmp_path / ATTEMPTS_FILE).read_text()) == attempts.entries
    with Attempts(tmp_path, resume=False) as fresh:  # a run started over forgets the earlier attempts
        pass
    assert len(fresh.entries) == 1 and os.path.getsize(tmp_path / ATTEMPTS_FILE) > 0
