"""Record files: atomic writes, exactly-once ingest by concurrent processes, read-only merging, report."""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from saip_bench.errors import SaipError
from saip_bench.results import (
    RECORDS_DIR,
    ResultsStore,
    find_record,
    iter_record_files,
    read_record_file,
    workspace_db_path,
    workspace_records,
    write_record_file,
)
from saip_bench.results.files import FORMAT, FORMAT_VERSION

SAIP = str(Path(sys.executable).with_name("saip"))
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "400", "NO_COLOR": "1"}


def _json_files(ws: Path) -> list[Path]:
    return sorted(p for p in (ws / RECORDS_DIR).rglob("*") if p.is_file())


# -- writing and reading one file ------------------------------------------------------------------------


def test_a_record_file_is_complete_json_under_its_uid_and_reads_back(tmp_path: Path, record_factory) -> None:
    ws = tmp_path / "ws"
    rec = record_factory(scale=0.75, metrics={"mAP": 41.25, "R1": float("nan")})
    path, written = write_record_file(ws, rec)
    assert rec.uid == "" and rec.id is None  # the caller's record is left alone
    assert len(written.uid) == 32 and int(written.uid, 16) >= 0  # uuid4 hex
    assert path == ws / "records" / "market1501" / f"{written.uid}.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    assert (data["format"], data["version"]) == (FORMAT, FORMAT_VERSION) == ("saip-record", 1)
    assert "id" not in data["record"] and data["record"]["uid"] == written.uid
    back = read_record_file(path)
    assert math.isnan(back.metrics.pop("R1")) and math.isnan(written.metrics.pop("R1"))  # NaN kept
    assert back == written and back.scale == 0.75
    assert list(iter_record_files(ws)) == [path]
    assert _json_files(ws) == [path]  # no temporary file left beside it


def test_a_given_uid_is_kept_and_never_overwritten(tmp_path: Path, record_factory) -> None:
    path, rec = write_record_file(tmp_path, record_factory(uid="job-0042"))
    assert path.name == "job-0042.json" and rec.uid == "job-0042"
    before = path.read_bytes()
    with pytest.raises(SaipError, match="job-0042.json: a record file with uid job-0042 exists already"):
        write_record_file(tmp_path, record_factory(uid="job-0042", primary_value=1.0))
    assert path.read_bytes() == before


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"dataset": "../escape"}, "cannot name a records folder"),
        ({"uid": "a/b"}, "uid must be"),
        ({"dataset": ""}, "dataset must be a non-empty string"),
    ],
)
def test_an_invalid_record_writes_nothing(tmp_path: Path, record_factory, overrides, message) -> None:
    with pytest.raises(SaipError, match=message):
        write_record_file(tmp_path / "ws", record_factory(**overrides))
    assert not (tmp_path / "ws").exists() and not (tmp_path / "escape").exists()


def test_a_failed_rename_leaves_no_file_and_nothing_to_ingest(
    tmp_path: Path, record_factory, monkeypatch
) -> None:
    ws = tmp_path / "ws"

    def broken_rename(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "rename", broken_rename)
    with pytest.raises(OSError, match="No space left") as info:
        write_record_file(ws, record_factory())
    assert info.value.filename.endswith(".json") and "/." not in info.value.filename  # names the final file
    monkeypatch.undo()
    assert _json_files(ws) == []  # neither a final nor a temporary file
    store = ResultsStore(workspace_db_path(ws))
    assert store.ingest(ws) == 0 and store.count() == 0


def test_a_writer_killed_before_the_rename_leaves_only_an_ignored_temporary_file(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    code = textwrap.dedent(
        """
        import os, sys
        sys.path.insert(0, sys.argv[2])
        from conftest import make_record
        from saip_bench.results import write_record_file
        os.rename = lambda src, dst: os._exit(9)  # the process dies between the fsync and the rename
        write_record_file(sys.argv[1], make_record())
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(ws), str(Path(__file__).parent)], env=ENV, capture_output=True
    )
    assert done.returncode == 9, done.stderr.decode()
    [left] = _json_files(ws)
    assert left.name.startswith(".") and left.name.endswith(".tmp")
    assert json.loads(left.read_text())["record"]["dataset"] == "market1501"  # complete, yet never read
    assert list(iter_record_files(ws)) == []
    store = ResultsStore(workspace_db_path(ws))
    assert store.ingest(ws) == 0 and store.count() == 0
    assert workspace_records(ws) == []


def _valid(tmp_path: Path, record_factory) -> tuple[Path, dict]:
    path, _ = write_record_file(tmp_path / "ws", record_factory())
    return path, json.loads(path.read_text())


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda p, d: p.write_text('{"format": "saip-record", '), "not a record file (invalid JSON"),
        (lambda p, d: p.write_bytes(b"\xff\xfe"), "not a record file (not UTF-8"),
        (lambda p, d: p.write_text("[1, 2]"), 'no "format": "saip-record"'),
        (lambda p, d: p.write_text(json.dumps({**d, "format": "other"})), 'no "format"'),
        (lambda p, d: p.write_text(json.dumps({**d, "version": 7})), "version 7 is newer"),
        (lambda p, d: p.write_text(json.dumps({**d, "record": 3})), 'no "record" object'),
        (
            lambda p, d: p.write_text(json.dumps({**d, "record": {"dataset": "x", "uid": p.stem}})),
            "record file lacks backbone_digest, backbone_name",
        ),
        (
            lambda p, d: p.write_text(json.dumps({**d, "record": {**d["record"], "scale": -1}})),
            "scale must be positive",
        ),
        (
            lambda p, d: p.write_text(json.dumps({**d, "record": {**d["record"], "uid": "0" * 32}})),
            "is not its file name",
        ),
    ],
)
def test_a_malformed_record_file_is_one_line_naming_it(
    tmp_path: Path, record_factory, damage, message
) -> None:
    path, data = _valid(tmp_path, record_factory)
    damage(path, data)
    with pytest.raises(SaipError, match="^" + str(path)) as info:
        read_record_file(path)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_find_record_looks_at_the_files_of_the_exact_evaluation(tmp_path: Path, record_factory) -> None:
    ws = tmp_path / "ws"
    key = dict(
        backbone_digest="a1b2c3d4e5f60718", dataset="market1501", protocol="frozen", config_digest="cfg0001"
    )
    assert find_record(ws, **key) is None  # no records folder at all
    _, half = write_record_file(ws, record_factory(scale=0.5))
    (ws / "records" / "market1501" / "broken.json").write_text("{")  # skipped, not fatal
    assert find_record(ws, **key) is None  # only the 0.5 scale is there
    assert find_record(ws, **key, scale=0.5) == half
    _, full = write_record_file(ws, record_factory())
    assert find_record(ws, **key, scale=1.0) == full
    assert find_record(ws, **{**key, "config_digest": "other"}) is None
    assert find_record(ws, **{**key, "dataset": "pa100k"}) is None
    assert not workspace_db_path(ws).exists()  # a job's check never touches SQLite


# -- ingest ------------------------------------------------------------------------------------------------


def test_ingest_is_idempotent_across_calls_and_store_objects(tmp_path: Path, record_factory) -> None:
    ws = tmp_path / "ws"
    written = [write_record_file(ws, record_factory(seed=i))[1] for i in range(3)]
    store = ResultsStore(workspace_db_path(ws))
    assert store.ingest(ws) == 3
    assert store.ingest(ws) == 0
    other = ResultsStore(workspace_db_path(ws))
    assert other.ingest(ws) == 0 and other.count() == 3
    assert sorted(r.uid for r in other.query()) == sorted(r.uid for r in written)
    assert {r.seed for r in store.query()} == {0, 1, 2}
    _, late = write_record_file(ws, record_factory(seed=3))
    assert other.ingest(ws) == 1 and store.ingest(ws) == 0 and store.count() == 4
    assert store.query(dataset="market1501")[-1] == late


def test_a_malformed_file_is_skipped_with_a_warning_naming_it(tmp_path: Path, record_factory, caplog) -> None:
    ws = tmp_path / "ws"
    for i in range(2):
        write_record_file(ws, record_factory(seed=i))
    bad = ws / "records" / "market1501" / "0123456789abcdef0123456789abcdef.json"
    bad.write_text("not json")
    store = ResultsStore(workspace_db_path(ws))
    with caplog.at_level(logging.WARNING, logger="saip_bench.results"):
        assert store.ingest(ws) == 2
    assert str(bad) in caplog.text and "invalid JSON" in caplog.text
    assert store.count() == 2


def test_add_still_works_and_a_uid_is_stored_once(tmp_path: Path, record_factory) -> None:
    ws = tmp_path / "ws"
    store = ResultsStore(workspace_db_path(ws))
    store.add(record_factory())
    store.add(record_factory())  # rows without a uid: as many as added
    assert [r.uid for r in store.query()] == ["", ""] and store.uids() == set()
    _, rec = write_record_file(ws, record_factory(seed=9))
    store.add(rec)
    assert store.ingest(ws) == 0  # its uid is stored already
    with pytest.raises(SaipError, match=f"uid {rec.uid} is stored already"):
        store.add(rec)
    assert store.count() == 3 and store.uids() == {rec.uid}


def test_a_read_only_store_refuses_to_ingest(tmp_path: Path, record_factory) -> None:
    ws = tmp_path / "ws"
    write_record_file(ws, record_factory())
    ResultsStore(workspace_db_path(ws))
    with pytest.raises(SaipError, match="read-only, cannot ingest"):
        ResultsStore(workspace_db_path(ws), read_only=True).ingest(ws)


@pytest.mark.parametrize(
    "filters",
    [
        {},
        {"task": "attribute"},
        {"dataset": "market1501", "protocol": "linear"},
        {"backbone": "bb1"},
        {"backbone": "digest1"},  # a digest prefix of 6+ characters
        {"backbone": "dig"},  # too short for a prefix: a name only
        {"scale": 0.5},
    ],
)
def test_matches_filters_like_query(tmp_path: Path, record_factory, filters) -> None:
    ws = tmp_path / "ws"
    for i in range(8):
        write_record_file(
            ws,
            record_factory(
                backbone_name=f"bb{i % 3}",
                backbone_digest=f"digest{i % 3}xyz",
                task=("reid", "attribute")[i % 2],
                dataset=("market1501", "pa100k")[i % 2],
                protocol=("frozen", "linear", "finetune")[i % 3],
                scale=(1.0, 0.5)[i % 2],
            ),
        )
    store = ResultsStore(workspace_db_path(ws))
    store.ingest(ws)
    every = store.query()
    assert [r.uid for r in every if r.matches(**filters)] == [r.uid for r in store.query(**filters)]


# -- many processes at once --------------------------------------------------------------------------------

_WRITER = """
import sys
sys.path.insert(0, sys.argv[3])
from conftest import make_record
from saip_bench.results import write_record_file
worker, count = int(sys.argv[2]), 15
for i in range(count):
    write_record_file(
        sys.argv[1],
        make_record(seed=worker * 100 + i, dataset=("market1501", "pa100k")[i % 2], primary_value=float(i)),
    )
"""

_READER = """
import json, sys, time
from pathlib import Path
from saip_bench.results import ResultsStore
ws, stop = Path(sys.argv[1]), Path(sys.argv[2])
store = ResultsStore(ws / "results.sqlite")
seen, rounds, added = 0, 0, 0
while True:
    last = stop.exists()  # read before the ingest: the round after the writers ended sees everything
    added += store.ingest(ws)
    uids = [r.uid for r in store.query()]
    assert len(uids) == len(set(uids)), "a record stored twice"
    assert len(uids) >= seen, "records vanished"
    seen, rounds = len(uids), rounds + 1
    if last:
        break
    time.sleep(0.01)
print(json.dumps({"rounds": rounds, "seen": seen, "added": added}))
"""


def test_eight_writer_processes_and_two_ingesting_readers_store_every_record_once(tmp_path: Path) -> None:
    ws, stop = tmp_path / "ws", tmp_path / "writers-done"
    here = str(Path(__file__).parent)
    readers = [
        subprocess.Popen([sys.executable, "-c", _READER, str(ws), str(stop)], env=ENV, stdout=subprocess.PIPE)
        for _ in range(2)
    ]
    writers = [
        subprocess.Popen([sys.executable, "-c", _WRITER, str(ws), str(w), here], env=ENV) for w in range(8)
    ]
    writer_codes = [proc.wait(timeout=120) for proc in writers]
    stop.touch()
    reader_out = [proc.communicate(timeout=120)[0] for proc in readers]
    assert writer_codes == [0] * 8
    assert [proc.returncode for proc in readers] == [0, 0], reader_out
    reports = [json.loads(out) for out in reader_out]
    assert all(r["seen"] == 120 for r in reports), reports  # each reader's last round saw every record
    # Between them the readers inserted each file exactly once.
    assert sum(r["added"] for r in reports) == 120, reports

    store = ResultsStore(workspace_db_path(ws))
    assert store.ingest(ws) == 0
    records = store.query()
    files = {path.stem for path in iter_record_files(ws)}
    assert len(records) == store.count() == len(files) == 8 * 15
    assert sorted(r.uid for r in records) == sorted(files)
    assert {r.seed for r in records} == {w * 100 + i for w in range(8) for i in range(15)}
    assert not [p for p in _json_files(ws) if p.name.endswith(".tmp")]


# -- reading a workspace for a report ----------------------------------------------------------------------


def test_a_read_only_workspace_merges_unstored_files_in_memory_and_writes_nothing(
    tmp_path: Path, record_factory, monkeypatch
) -> None:
    ws = tmp_path / "ws"
    store = ResultsStore(workspace_db_path(ws))
    _, first = write_record_file(ws, record_factory(seed=1))
    store.ingest(ws)
    store.add(record_factory(seed=2))
    _, pending = write_record_file(ws, record_factory(seed=3))
    before = workspace_db_path(ws).read_bytes()
    monkeypatch.setattr(os, "access", lambda path, mode: False)  # as on read-only media
    got = workspace_records(ws)
    assert [r.seed for r in got] == [1, 2, 3] and got[0] == first and got[2] == pending
    assert workspace_db_path(ws).read_bytes() == before and store.count() == 2

    only_files = tmp_path / "only-files"
    write_record_file(only_files, record_factory(seed=4))
    assert [r.seed for r in workspace_records(only_files)] == [4]
    assert not workspace_db_path(only_files).exists()


def test_a_writable_workspace_is_ingested_and_its_store_created(tmp_path: Path, record_factory) -> None:
    ws = tmp_path / "ws"
    write_record_file(ws, record_factory(seed=1))
    write_record_file(ws, record_factory(seed=2, dataset="pa100k", task="attribute"))
    assert {r.seed for r in workspace_records(ws)} == {1, 2}
    assert ResultsStore(workspace_db_path(ws), read_only=True).count() == 2
    assert sorted(p.name for p in ws.iterdir()) == ["records", "results.sqlite"]  # no runs/ or data/ made


def test_saip_report_shows_a_workspace_that_holds_only_record_files(tmp_path: Path, record_factory) -> None:
    ws = tmp_path / "ws"
    write_record_file(ws, record_factory(backbone_name="saip_tiny", primary_value=41.25))
    write_record_file(
        ws,
        record_factory(
            backbone_name="saip_tiny",
            task="attribute",
            dataset="pa100k",
            primary_metric="mA",
            primary_value=70.5,
            metrics={"mA": 70.5},
        ),
    )
    args = [SAIP, "report", "--workspace", str(ws), "--format", "csv"]
    done = subprocess.run(args, env=ENV, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = [d for d in csv.DictReader(done.stdout.splitlines()) if d["shown"] == "1"]  # long-format CSV
    assert [(d["Backbone"], d["column_title"], d["metric"], d["mean"]) for d in lines] == [
        ("saip_tiny", "Market-1501", "mAP", "41.25"),
        ("saip_tiny", "PA-100K", "mA", "70.5"),
    ]
    assert ResultsStore(workspace_db_path(ws), read_only=True).count() == 2  # the report ingested them


def test_saip_report_on_read_only_media_shows_unstored_files_and_writes_nothing(
    tmp_path: Path, record_factory
) -> None:
    mount = tmp_path / "ro"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4M", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.decode().strip()}")
    try:
        ws = mount / "ws"
        ResultsStore(workspace_db_path(ws)).add(record_factory(backbone_name="stored_tiny"))
        write_record_file(ws, record_factory(backbone_name="file_tiny", backbone_digest="f1le" * 4))
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
        before = {p: p.read_bytes() for p in sorted(mount.rglob("*")) if p.is_file()}
        args = [SAIP, "report", "--workspace", str(ws), "--format", "csv"]
        run = subprocess.run(args, env=ENV, capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stdout + run.stderr
        lines = [d for d in csv.DictReader(run.stdout.splitlines()) if d["shown"] == "1"]  # long-format CSV
        assert [(d["Backbone"], d["mean"]) for d in lines] == [
            ("stored_tiny", "41.25"),
            ("file_tiny", "41.25"),
        ]
        assert {p: p.read_bytes() for p in sorted(mount.rglob("*")) if p.is_file()} == before
    finally:
        subprocess.run(["umount", str(mount)], check=False)
