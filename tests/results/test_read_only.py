"""A store opened read-only writes nothing: no schema, no migration, no -wal / -shm; an old schema reads."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from saip_bench.errors import SaipError
from saip_bench.results import ResultsStore, open_workspace_store
from tests.results.test_migration import _v1_workspace


def _digests(folder: Path) -> dict[str, str]:
    files = [p for p in sorted(folder.iterdir()) if p.is_file()]
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def test_read_only_reads_without_writing_and_refuses_to_add(tmp_path: Path, record_factory) -> None:
    store = open_workspace_store(tmp_path / "ws")
    store.add(record_factory())
    before = _digests(tmp_path / "ws")
    ro = ResultsStore(store.path, read_only=True)
    assert ro.count() == 1 and ro.query()[0].metrics["mAP"] == 41.25
    assert ro.has(
        backbone_digest="a1b2c3d4e5f60718", dataset="market1501", protocol="frozen", config_digest="cfg0001"
    )
    with pytest.raises(SaipError, match="read-only"):
        ro.add(record_factory())
    assert _digests(tmp_path / "ws") == before


def test_an_old_schema_reads_read_only_with_defaults_and_is_not_migrated(tmp_path: Path) -> None:
    path = _v1_workspace(tmp_path / "ws")
    before = path.read_bytes()
    [old] = ResultsStore(path, read_only=True).query()
    assert (old.dataset, old.resumed, old.resumed_from_step) == ("market1501", False, 0)
    assert path.read_bytes() == before
    with sqlite3.connect(path) as conn:
        assert "resumed" not in [row[1] for row in conn.execute("PRAGMA table_info(records)")]


def test_opening_a_current_store_for_writing_writes_nothing_until_a_record(tmp_path: Path) -> None:
    store = open_workspace_store(tmp_path / "ws")
    before = _digests(tmp_path / "ws")
    open_workspace_store(tmp_path / "ws")
    assert _digests(tmp_path / "ws") == before and store.count() == 0


def test_read_only_needs_the_file(tmp_path: Path) -> None:
    with pytest.raises(SaipError, match="no such results database"):
        ResultsStore(tmp_path / "missing.sqlite", read_only=True)
    assert not (tmp_path / "missing.sqlite").exists()
