"""A workspace on a network filesystem: evaluations write record files only; the store uses no WAL there."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from saip_bench.io import network_filesystem


def test_network_filesystem_reads_the_mount_table(tmp_path: Path) -> None:
    mounts = tmp_path / "mounts"
    shared = tmp_path / "shared"
    (shared / "ws").mkdir(parents=True)
    mounts.write_text(
        "/dev/sda1 / ext4 rw 0 0\n"
        f"server:/export {shared} nfs4 rw,relatime 0 0\n"
        f"/dev/sdb1 {shared}/ws/local xfs rw 0 0\n"
    )
    assert network_filesystem(shared / "ws" / "not-yet" / "results.sqlite", mounts=str(mounts)) == "nfs4"
    (shared / "ws" / "local").mkdir()
    assert network_filesystem(shared / "ws" / "local", mounts=str(mounts)) is None  # the longest mount wins
    assert network_filesystem(tmp_path, mounts=str(mounts)) is None
    assert network_filesystem(tmp_path, mounts=str(tmp_path / "absent")) is None


def test_evaluation_on_nfs_writes_no_sqlite(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from saip_bench.datasets import DatasetSpec
    from saip_bench.evaluate import dispatch
    from saip_bench.evaluate.adapter import EvalResult
    from saip_bench.results import ResultsStore, iter_record_files, workspace_db_path

    class Fake:
        task, protocols = "reid", ("finetune", "frozen")

        def run(self, request, backbone) -> EvalResult:
            return EvalResult({"mAP": 12.5}, "mAP")

    monkeypatch.setattr(DatasetSpec, "load_adapter", lambda self: Fake())
    monkeypatch.setattr(dispatch, "network_filesystem", lambda path: "nfs4")
    (tmp_path / "data" / "Market-1501-v15.09.15").mkdir(parents=True)
    ws = tmp_path / "ws"
    args = dict(task="reid", dataset="market1501", backbone="random:test_vit", data_root=tmp_path / "data",
                workspace=ws, protocol="frozen", budget="smoke", device="cpu")  # fmt: skip
    [out] = dispatch.evaluate(**args)
    assert out.status == "done"
    assert not workspace_db_path(ws).exists()  # a job on NFS never writes SQLite
    assert len(list(iter_record_files(ws))) == 1
    [again] = dispatch.evaluate(**args)  # "already recorded" is decided from the record files
    assert again.status == "skipped"

    import saip_bench.results.store as store_module

    monkeypatch.setattr(store_module, "network_filesystem", lambda path: "nfs4")
    store = ResultsStore(workspace_db_path(ws))
    assert store.ingest(ws) == 1
    with sqlite3.connect(workspace_db_path(ws)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    assert [r.primary_value for r in store.query()] == [12.5]
