"""ResultsStore: round trip, filters, has(), schema versioning, and 8 concurrent writer processes."""

from __future__ import annotations

import multiprocessing
import sqlite3

import pytest

from saip_bench.errors import SaipError
from saip_bench.results import SCHEMA_VERSION, EvalRecord, ResultsStore, open_workspace_store


def test_round_trip_keeps_every_field(tmp_path, record_factory):
    store = ResultsStore(tmp_path / "r.sqlite")
    rec = record_factory(metrics={"mAP": 41.25, "R1": 60.5, "R5": 80.0}, scale=0.75, git_revision=None)
    row_id = store.add(rec)
    assert rec.id is None  # the caller's object is left alone
    (back,) = store.query()
    assert back.id == row_id
    assert back == rec  # id does not take part in equality
    assert back.metrics == {"mAP": 41.25, "R1": 60.5, "R5": 80.0}
    assert back.git_revision is None and back.scale == 0.75


def test_wal_mode_and_schema_version(tmp_path):
    store = ResultsStore(tmp_path / "r.sqlite")
    assert store.schema_version() == SCHEMA_VERSION
    conn = sqlite3.connect(store.path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        cols = {row[1] for row in conn.execute("PRAGMA table_info(records)")}
    finally:
        conn.close()
    assert {"metrics", "primary_value", "config_digest", "git_revision", "scale"} <= cols


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "r.sqlite"
    ResultsStore(path)
    conn = sqlite3.connect(path)
    conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    conn.commit()
    conn.close()
    with pytest.raises(SaipError, match="schema version"):
        ResultsStore(path)


def test_not_a_database_is_one_clear_error(tmp_path):
    path = tmp_path / "r.sqlite"
    path.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(SaipError, match=str(path.name)):
        ResultsStore(path)


def test_filters(tmp_path, record_factory):
    store = ResultsStore(tmp_path / "r.sqlite")
    store.add(record_factory())
    store.add(record_factory(dataset="pa100k", task="attribute", protocol="linear", primary_metric="mA"))
    store.add(record_factory(backbone_name="random:vit", backbone_digest="ffff0000eeee"))
    assert len(store.query()) == 3
    assert [r.dataset for r in store.query(task="attribute")] == ["pa100k"]
    assert len(store.query(dataset="market1501")) == 2
    assert len(store.query(backbone="random:vit")) == 1
    assert len(store.query(backbone="ffff0000")) == 1  # digest prefix
    assert store.query(backbone="ffff") == []  # too short to be a digest prefix, and no such name
    assert len(store.query(protocol="linear")) == 1
    assert store.count() == 3


def test_has_matches_the_exact_evaluation(tmp_path, record_factory):
    store = ResultsStore(tmp_path / "r.sqlite")
    store.add(record_factory(scale=0.75))
    key = dict(
        backbone_digest="a1b2c3d4e5f60718", dataset="market1501", protocol="frozen", config_digest="cfg0001"
    )
    assert store.has(**key, scale=0.75)
    assert not store.has(**key)  # scale 1.0 was never evaluated
    assert not store.has(**{**key, "config_digest": "other"}, scale=0.75)


def test_bad_record_is_rejected(tmp_path, record_factory):
    store = ResultsStore(tmp_path / "r.sqlite")
    with pytest.raises(SaipError, match="non-numeric"):
        store.add(record_factory(metrics={"mAP": "high"}))
    with pytest.raises(SaipError, match="scale"):
        store.add(record_factory(scale=0))
    assert store.count() == 0


def test_workspace_layout(tmp_path):
    store = open_workspace_store(tmp_path / "ws")
    assert store.path == tmp_path / "ws" / "results.sqlite"
    assert (tmp_path / "ws" / "runs").is_dir() and (tmp_path / "ws" / "data").is_dir()
    other = open_workspace_store(tmp_path / "ws", db=tmp_path / "elsewhere.sqlite")
    assert other.path.exists()


def _writer_body(path: str, worker: int, n: int) -> None:
    store = ResultsStore(path)
    for i in range(n):
        store.add(
            EvalRecord(
                backbone_digest=f"digest{worker:02d}",
                backbone_name=f"bb{worker}",
                pretrain_method="saip",
                task="reid",
                dataset="market1501",
                protocol="frozen",
                budget="smoke",
                metrics={"mAP": float(i), "worker": float(worker)},
                primary_metric="mAP",
                primary_value=float(i),
                config_digest=f"cfg{i}",
                seed=i,
                package_version="0.1.0",
                git_revision=None,
                duration_s=0.0,
                started_at="2026-11-26T17:00:00+00:00",
                ended_at="2026-11-26T17:00:00+00:00",
            )
        )


def test_eight_concurrent_writers_lose_nothing(tmp_path):
    path = str(tmp_path / "r.sqlite")
    # fork keeps the children cheap (no re-import); spawn where fork does not exist.
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    procs = [ctx.Process(target=_writer_body, args=(path, w, 25)) for w in range(8)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=120)
    assert [proc.exitcode for proc in procs] == [0] * 8
    records = ResultsStore(path).query()
    assert len(records) == 200
    assert len({r.id for r in records}) == 200
    # Every worker's every record is there, with its own metrics.
    assert {(r.backbone_name, r.seed) for r in records} == {
        (f"bb{w}", i) for w in range(8) for i in range(25)
    }
    assert all(r.metrics["worker"] == float(r.backbone_name[2:]) for r in records)
