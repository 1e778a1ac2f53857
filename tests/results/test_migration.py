"""A workspace written before a schema change still opens: its store is migrated in place, rows kept."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from saip_bench.results import SCHEMA_VERSION, ResultsStore, open_workspace_store

# The table as schema version 1 wrote it (saip-bench before ``resumed`` / ``resumed_from_step``), frozen here.
_V1_RECORDS = (
    "CREATE TABLE records (id INTEGER PRIMARY KEY AUTOINCREMENT, backbone_digest TEXT NOT NULL, "
    "backbone_name TEXT NOT NULL, pretrain_method TEXT NOT NULL, task TEXT NOT NULL, dataset TEXT NOT NULL, "
    "protocol TEXT NOT NULL, budget TEXT NOT NULL, metrics TEXT NOT NULL, primary_metric TEXT NOT NULL, "
    "primary_value REAL, config_digest TEXT NOT NULL, seed INTEGER NOT NULL, package_version TEXT NOT NULL, "
    "git_revision TEXT, duration_s REAL NOT NULL, started_at TEXT NOT NULL, ended_at TEXT NOT NULL, "
    "scale REAL NOT NULL DEFAULT 1.0)"
)


def _v1_workspace(ws: Path) -> Path:
    ws.mkdir()
    path = ws / "results.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    conn.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    conn.execute(_V1_RECORDS)
    conn.execute(
        "INSERT INTO records (backbone_digest, backbone_name, pretrain_method, task, dataset, protocol, "
        "budget, metrics, primary_metric, primary_value, config_digest, seed, package_version, git_revision, "
        "duration_s, started_at, ended_at, scale) VALUES (" + ", ".join("?" * 18) + ")",
        ("d1g3st000001", "saip_vit_tiny", "saip", "reid", "market1501", "frozen", "smoke",
         json.dumps({"mAP": 12.5}), "mAP", 12.5, "cfg", 0, "0.1.0", None, 3.0,
         "2026-01-01T00:00:00+00:00", "2026-01-01T00:00:03+00:00", 1.0),
    )  # fmt: skip
    conn.commit()
    conn.close()
    return path


def test_an_old_workspace_opens_and_keeps_its_records(tmp_path: Path, record_factory) -> None:
    path = _v1_workspace(tmp_path / "ws")
    store = open_workspace_store(tmp_path / "ws")
    assert store.schema_version() == SCHEMA_VERSION == 4
    [old] = store.query()
    assert (old.dataset, old.metrics, old.duration_s) == ("market1501", {"mAP": 12.5}, 3.0)
    assert old.resumed is False and old.resumed_from_step == 0
    assert store.has(
        backbone_digest="d1g3st000001", dataset="market1501", protocol="frozen", config_digest="cfg"
    )
    store.add(record_factory(resumed=True, resumed_from_step=7, duration_s=42.0))
    new = ResultsStore(path).query()[-1]  # a second open finds nothing left to migrate
    assert (new.resumed, new.resumed_from_step, new.duration_s) == (True, 7, 42.0)
    with sqlite3.connect(path) as conn:
        columns = [row[1] for row in conn.execute("PRAGMA table_info(records)")]
    assert columns.count("resumed") == 1 and columns.count("resumed_from_step") == 1


def test_a_new_store_round_trips_the_resume_fields(tmp_path: Path, record_factory) -> None:
    store = ResultsStore(tmp_path / "r.sqlite")
    store.add(record_factory())
    store.add(record_factory(resumed=True, resumed_from_step=3))
    fresh, resumed = store.query()
    assert (fresh.resumed, fresh.resumed_from_step) == (False, 0)
    assert (resumed.resumed, resumed.resumed_from_step) == (True, 3)


# Schema version 2 added these to version 1's table (a v1 store migrated by saip-bench 0.1 looks like this).
_V2_RECORDS = _V1_RECORDS[:-1] + (
    ", resumed INTEGER NOT NULL DEFAULT 0, resumed_from_step INTEGER NOT NULL DEFAULT 0)"
)


def test_a_version_2_store_gains_a_unique_uid_and_keeps_its_rows(tmp_path: Path, record_factory) -> None:
    from saip_bench.results import write_record_file

    ws = tmp_path / "ws"
    path = _v1_workspace(ws)
    with sqlite3.connect(path) as conn:  # rebuild it as version 2 left it, resumed row included
        conn.execute("DROP TABLE records")
        conn.execute(_V2_RECORDS)
        conn.execute(
            "INSERT INTO records (backbone_digest, backbone_name, pretrain_method, task, dataset, protocol, "
            "budget, metrics, primary_metric, primary_value, config_digest, seed, package_version, "
            "git_revision, duration_s, started_at, ended_at, scale, resumed, resumed_from_step) "
            "VALUES (" + ", ".join("?" * 20) + ")",
            ("d1g3st000002", "saip_vit_tiny", "saip", "reid", "market1501", "frozen", "smoke",
             json.dumps({"mAP": 20.0}), "mAP", 20.0, "cfg", 0, "0.1.0", None, 9.0,
             "2026-01-01T00:00:00+00:00", "2026-01-01T00:00:09+00:00", 0.5, 1, 4),
        )  # fmt: skip
        conn.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    [ro] = ResultsStore(path, read_only=True).query()  # read as it is, uid empty
    assert ro.uid == "" and ResultsStore(path, read_only=True).uids() == set()

    store = ResultsStore(path)
    assert store.schema_version() == SCHEMA_VERSION
    [old] = store.query()
    assert (old.resumed, old.resumed_from_step, old.scale, old.uid) == (True, 4, 0.5, "")
    write_record_file(ws, record_factory())
    assert store.ingest(ws) == 1 and store.ingest(ws) == 0 and store.count() == 2
    with sqlite3.connect(path) as conn:
        indexes = {row[1]: row[2] for row in conn.execute("PRAGMA index_list(records)")}
        assert indexes["records_uid"] == 1  # unique
        assert conn.execute("SELECT COUNT(*) FROM records WHERE uid IS NULL").fetchone()[0] == 1


def test_a_version_3_store_reads_its_rows_as_trained_at_their_own_scale(
    tmp_path: Path, record_factory
) -> None:
    """Version 4 added ``train_scale`` / ``train_run``: an older row was trained at its own scale."""
    ws = tmp_path / "ws"
    path = _v1_workspace(ws)
    with sqlite3.connect(path) as conn:  # the v1 row at scale 0.5, as a version 3 store holds it
        conn.execute("ALTER TABLE records ADD COLUMN resumed INTEGER NOT NULL DEFAULT 0")
        conn.execute("ALTER TABLE records ADD COLUMN resumed_from_step INTEGER NOT NULL DEFAULT 0")
        conn.execute("ALTER TABLE records ADD COLUMN uid TEXT")
        conn.execute("UPDATE records SET scale = 0.5")
        conn.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
    [ro] = ResultsStore(path, read_only=True).query()  # read as it is
    assert (ro.scale, ro.train_scale, ro.train_run) == (0.5, 0.5, "")
    store = ResultsStore(path)
    assert store.schema_version() == SCHEMA_VERSION == 4
    [old] = store.query()
    assert (old.train_scale, old.train_run) == (0.5, "")
    with sqlite3.connect(path) as conn:  # the row itself is not rewritten
        assert conn.execute("SELECT train_scale FROM records").fetchone() == (None,)
    key = dict(backbone_digest="d1g3st000001", dataset="market1501", protocol="frozen", config_digest="cfg")
    assert store.has(**key, scale=0.5) and store.has(**key, scale=0.5, train_scale=0.5)
    assert not store.has(**key, scale=0.5, train_scale=1.0)  # the probe of a model trained at x1 is another
    store.add(record_factory(scale=0.5, train_scale=1.0, train_run="runs/market1501/x-x1"))
    new = store.query()[-1]
    assert (new.scale, new.train_scale, new.train_run) == (0.5, 1.0, "runs/market1501/x-x1")
    assert store.has(
        **{
            **key,
            "backbone_digest": new.backbone_digest,
            "dataset": new.dataset,
            "protocol": new.protocol,
            "config_digest": new.config_digest,
        },
        scale=0.5,
        train_scale=1.0,
    )
