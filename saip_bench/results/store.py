"""The results store: one SQLite database per workspace, safe under many concurrent writer processes.

Why SQLite in WAL mode: readers never block the writer and the file is a single portable artifact. Every
write is one ``BEGIN IMMEDIATE`` transaction (the write lock is taken up front, so two writers never deadlock
upgrading a read lock), with a busy timeout plus a retry loop on top, so 8 evaluations finishing at the same
moment all land. A connection is opened per operation: that keeps the store safe to share across ``fork``
and never holds the lock between calls.

Evaluation jobs on a cluster do not write here at all (WAL needs shared memory, which NFS and Lustre do not
give): they write record files (:mod:`saip_bench.results.files`) and :meth:`ResultsStore.ingest` adds each
file exactly once, keyed by the record's uid, however many processes ingest at the same moment.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

from saip_bench.errors import SaipError
from saip_bench.io import network_filesystem
from saip_bench.results.files import RECORDS_DIR, unrecorded
from saip_bench.results.record import SCALE_EPS, EvalRecord

log = logging.getLogger(__name__)

#: Bump when the table layout changes; a store written by a newer version is refused, not misread, and an
#: older one is migrated when opened. 2: ``resumed``, ``resumed_from_step``. 3: ``uid`` (unique; NULL in rows
#: stored before it and in rows added without one). 4: ``train_scale`` (NULL in older rows: read as
#: ``scale``), ``train_run``.
SCHEMA_VERSION = 4
RESULTS_FILE = "results.sqlite"
#: Environment variable naming the default workspace of every command that takes ``--workspace``.
WORKSPACE_ENV = "SAIP_WORKSPACE"
DEFAULT_WORKSPACE = "saip-workspace"

_COLUMNS: tuple[tuple[str, str], ...] = (
    ("backbone_digest", "TEXT NOT NULL"),
    ("backbone_name", "TEXT NOT NULL"),
    ("pretrain_method", "TEXT NOT NULL"),
    ("task", "TEXT NOT NULL"),
    ("dataset", "TEXT NOT NULL"),
    ("protocol", "TEXT NOT NULL"),
    ("budget", "TEXT NOT NULL"),
    ("metrics", "TEXT NOT NULL"),  # JSON object name -> float
    ("primary_metric", "TEXT NOT NULL"),
    ("primary_value", "REAL"),
    ("config_digest", "TEXT NOT NULL"),
    ("seed", "INTEGER NOT NULL"),
    ("package_version", "TEXT NOT NULL"),
    ("git_revision", "TEXT"),
    ("duration_s", "REAL NOT NULL"),
    ("started_at", "TEXT NOT NULL"),
    ("ended_at", "TEXT NOT NULL"),
    ("scale", "REAL NOT NULL DEFAULT 1.0"),
    # Columns added after version 1 need a DEFAULT: a migration adds them to rows that exist.
    ("resumed", "INTEGER NOT NULL DEFAULT 0"),
    ("resumed_from_step", "INTEGER NOT NULL DEFAULT 0"),
    ("uid", "TEXT"),  # the record file's uuid4 hex; NULL for a row added directly
    ("train_scale", "REAL"),  # NULL in rows stored before version 4: the record's own scale
    ("train_run", "TEXT NOT NULL DEFAULT ''"),
)
_NAMES = tuple(name for name, _ in _COLUMNS)
_TABLES = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS records (id INTEGER PRIMARY KEY AUTOINCREMENT, "
    + ", ".join(f"{name} {decl}" for name, decl in _COLUMNS)
    + ")",
)
# After the migration's ALTER TABLEs: an index may name a column an old table gains only there.
_INDEXES = (
    "CREATE INDEX IF NOT EXISTS records_lookup ON records "
    "(backbone_digest, dataset, protocol, config_digest, scale)",
    "CREATE INDEX IF NOT EXISTS records_dataset ON records (dataset, task)",
    # UNIQUE is what makes ingest exactly-once: INSERT OR IGNORE of a uid already there does nothing.
    # SQLite lets any number of rows hold NULL.
    "CREATE UNIQUE INDEX IF NOT EXISTS records_uid ON records (uid)",
)


#: What a column added after version 1 reads as in a store too old to have it (read-only opening).
_ADDED_DEFAULTS: dict[str, object] = {
    "scale": 1.0,
    "resumed": 0,
    "resumed_from_step": 0,
    "uid": None,
    "train_scale": None,
    "train_run": "",
}


class ResultsStore:
    """Evaluation records in one SQLite file.

    Opening a store whose schema is current writes nothing; only a new or older store is created or migrated.
    With ``read_only`` nothing is ever written (``saip report`` on an archive or a mounted snapshot): the
    connection is ``query_only``, and where the folder cannot be written (read-only media, where WAL could
    not make its ``-shm`` file) SQLite opens the file with ``mode=ro&immutable=1``; an older schema is read
    as it is, the columns it lacks taking their defaults.

    Args:
        path: The database file; created (with its folder) if missing, unless ``read_only``.
        timeout_s: How long a write waits for another process's write lock before giving up.
        read_only: Only read: the file must exist, and :meth:`add` is refused.
    """

    def __init__(self, path: str | Path, *, timeout_s: float = 60.0, read_only: bool = False) -> None:
        self.path = Path(path)
        self.timeout_s = timeout_s
        self.read_only = read_only
        self._network: str | None = None  # the network filesystem the file is on ("" if none), once looked up
        if self.path.is_dir():
            raise SaipError(f"{self.path}: is a folder, expected a results database file")
        if read_only:
            if not self.path.is_file():
                raise SaipError(f"{self.path}: no such results database")
            # A folder that cannot be written (read-only media) cannot hold WAL's -shm: read the file as is.
            self._immutable = not os.access(self.path.parent, os.W_OK)
            self._columns = self._check_version()
            return
        self._immutable = False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self._is_current():
            self._init_schema()
        self._columns = set(_NAMES)

    def __repr__(self) -> str:
        return f"ResultsStore({str(self.path)!r})"

    # -- public API --------------------------------------------------------------------------------------

    def add(self, record: EvalRecord) -> int:
        """Store ``record`` in one transaction and return its new id (``record`` itself is not modified).

        A record without a uid is stored with none (NULL); one whose uid is stored already is refused.
        """
        if self.read_only:
            raise SaipError(f"{self.path}: opened read-only, cannot add a record")
        rec = record.validated()
        sql = f"INSERT INTO records ({', '.join(_NAMES)}) VALUES ({', '.join('?' * len(_NAMES))})"
        with self._write() as conn:
            try:
                cursor = conn.execute(sql, _values(rec))
            except sqlite3.IntegrityError:
                raise SaipError(f"{self.path}: a record with uid {rec.uid} is stored already") from None
            row_id = cursor.lastrowid
        assert row_id is not None
        log.debug("stored %s/%s/%s as record %d", rec.backbone_name, rec.dataset, rec.protocol, row_id)
        return int(row_id)

    def ingest(self, workspace: str | Path) -> int:
        """Add every record file of ``workspace`` this store does not hold yet; return how many were new.

        Exactly once per file, however many processes ingest at the same moment or how often: the known
        uids are read once, only the other files are opened, and they are inserted in one transaction with
        ``INSERT OR IGNORE`` on the unique uid, so a file another process stored meanwhile is not counted.
        A malformed file is skipped with a warning naming it, and stays unstored (see
        :func:`saip_bench.results.files.unrecorded`). With nothing new, nothing is written.

        Raises:
            SaipError: The store was opened read-only, or the database cannot be written.
        """
        if self.read_only:
            raise SaipError(f"{self.path}: opened read-only, cannot ingest record files")
        new = unrecorded(workspace, self.uids())
        if not new:
            return 0
        sql = f"INSERT OR IGNORE INTO records ({', '.join(_NAMES)}) VALUES ({', '.join('?' * len(_NAMES))})"
        with self._write() as conn:
            before = conn.total_changes
            conn.executemany(sql, [_values(rec) for rec in new])
            added = conn.total_changes - before
        log.debug("%s: ingested %d record file(s) from %s", self.path, added, Path(workspace) / RECORDS_DIR)
        return added

    def uids(self) -> set[str]:
        """The uids of the stored records (rows stored without one have none)."""
        if "uid" not in self._columns:  # an older store read read-only
            return set()
        with self._read() as conn:
            rows = conn.execute("SELECT uid FROM records WHERE uid IS NOT NULL AND uid != ''").fetchall()
        return {str(row[0]) for row in rows}

    def query(
        self,
        *,
        task: str | None = None,
        dataset: str | None = None,
        backbone: str | None = None,
        protocol: str | None = None,
        scale: float | None = None,
    ) -> list[EvalRecord]:
        """Records matching every given filter, oldest first.

        Args:
            task: Task adapter name.
            dataset: Dataset name.
            backbone: A backbone name, or its digest or a prefix of it (at least 6 characters).
            protocol: Evaluation protocol.
            scale: Input-scale multiple.
        """
        where: list[str] = []
        args: list[object] = []
        for name, value in (("task", task), ("dataset", dataset), ("protocol", protocol)):
            if value is not None:
                where.append(f"{name} = ?")
                args.append(value)
        if backbone is not None:
            if len(backbone) >= 6:
                where.append("(backbone_name = ? OR substr(backbone_digest, 1, ?) = ?)")
                args += [backbone, len(backbone), backbone]
            else:
                where.append("backbone_name = ?")
                args.append(backbone)
        if scale is not None:
            where.append("abs(scale - ?) < ?")
            args += [float(scale), SCALE_EPS]
        sql = f"SELECT id, {', '.join(self._select())} FROM records"
        if where:
            sql += " WHERE " + " AND ".join(where)
        with self._read() as conn:
            rows = conn.execute(sql + " ORDER BY id", args).fetchall()
        return [self._to_record(row) for row in rows]

    def has(
        self,
        *,
        backbone_digest: str,
        dataset: str,
        protocol: str,
        config_digest: str,
        scale: float = 1.0,
        train_scale: float | None = None,
    ) -> bool:
        """Whether this exact evaluation (same weights, dataset, protocol, config, scale and training scale,
        which is ``scale`` when None) is stored."""
        scale_of = "scale" if "scale" in self._columns else "1.0"
        trained_at = f"IFNULL(train_scale, {scale_of})" if "train_scale" in self._columns else scale_of
        sql = (
            "SELECT 1 FROM records WHERE backbone_digest = ? AND dataset = ? AND protocol = ? "
            f"AND config_digest = ? AND abs({scale_of} - ?) < ? AND abs({trained_at} - ?) < ? LIMIT 1"
        )
        trained = float(scale if train_scale is None else train_scale)
        with self._read() as conn:
            row = conn.execute(
                sql,
                (
                    backbone_digest,
                    dataset,
                    protocol,
                    config_digest,
                    float(scale),
                    SCALE_EPS,
                    trained,
                    SCALE_EPS,
                ),
            ).fetchone()
        return row is not None

    def count(self) -> int:
        """Number of stored records."""
        with self._read() as conn:
            return int(conn.execute("SELECT COUNT(*) FROM records").fetchone()[0])

    def schema_version(self) -> int:
        """The schema version recorded in the database's ``meta`` table."""
        with self._read() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        return int(row[0])

    # -- internals ---------------------------------------------------------------------------------------

    def _select(self) -> list[str]:
        """The record columns to SELECT: a missing one (an old store read read-only) as its default."""
        return [
            name if name in self._columns else f"{_sql_literal(_ADDED_DEFAULTS[name])} AS {name}"
            for name in _NAMES
        ]

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: we issue BEGIN ourselves, so the transaction boundaries are exactly ours.
        if self._immutable:  # read-only media: no -shm can be made, and no writer can change the file
            uri = f"{self.path.resolve().as_uri()}?mode=ro&immutable=1"
            conn = sqlite3.connect(uri, uri=True, timeout=self.timeout_s, isolation_level=None)
        else:
            conn = sqlite3.connect(self.path, timeout=self.timeout_s, isolation_level=None)
        conn.execute(f"PRAGMA busy_timeout = {int(self.timeout_s * 1000)}")
        if self.read_only:
            # Not mode=ro in a writable folder: a read-only connection cannot checkpoint, so it would leave
            # -wal and -shm files behind; a read-write one that refuses writes removes them on close.
            conn.execute("PRAGMA query_only = ON")
        return conn

    def _read_version(self) -> tuple[int | None, set[str], str]:
        """The stored schema version (None: no meta table), the records columns and the journal mode."""
        with self._read() as conn:
            found = None
            if _has_table(conn, "meta"):
                row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
                found = int(row[0]) if row is not None else None
            columns = {info[1] for info in conn.execute("PRAGMA table_info(records)")}
            mode = str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower()
        return found, columns, mode

    def _newer(self, found: int) -> SaipError:
        return SaipError(
            f"{self.path}: results schema version {found} is newer than this saip-bench supports "
            f"({SCHEMA_VERSION}); upgrade saip-bench"
        )

    def _journal_mode(self) -> str:
        """``wal``, except on a network filesystem, where WAL does not work: the rollback journal there."""
        if self._network is None:
            self._network = network_filesystem(self.path.parent) or ""
            if self._network:
                log.warning(
                    "%s is on %s: SQLite in rollback-journal mode, not WAL; evaluations there write record "
                    "files only, and this store takes them in",
                    self.path,
                    self._network,
                )
        return "delete" if self._network else "wal"

    def _is_current(self) -> bool:
        """Whether the file exists with this version's schema, so opening it need not write at all."""
        if not self.path.is_file() or self.path.stat().st_size == 0:
            return False
        found, columns, mode = self._read_version()
        if found is not None and found > SCHEMA_VERSION:
            raise self._newer(found)
        return found == SCHEMA_VERSION and set(_NAMES) <= columns and mode == self._journal_mode()

    def _check_version(self) -> set[str]:
        """Read-only opening: refuse a newer schema, return the record columns there are."""
        found, columns, _ = self._read_version()
        if found is not None and found > SCHEMA_VERSION:
            raise self._newer(found)
        if not columns:
            raise SaipError(f"{self.path}: not a results database (no records table)")
        return columns

    @contextlib.contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        try:
            conn = self._connect()
        except sqlite3.Error as err:
            raise self._error(err) from None
        try:
            yield conn
        except sqlite3.DatabaseError as err:
            raise self._error(err) from None
        finally:
            conn.close()

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction; retried while another process holds the lock."""
        deadline = time.monotonic() + self.timeout_s
        attempt = 0
        while True:
            try:
                conn = self._connect()
                try:
                    conn.execute("BEGIN IMMEDIATE")
                except BaseException:
                    conn.close()
                    raise
            except sqlite3.OperationalError as err:
                attempt += 1
                if not _is_busy(err) or time.monotonic() > deadline:
                    raise self._error(err) from None
                # Jittered back-off so the waiting writers do not retry in lock-step.
                time.sleep(min(0.5, 0.01 * 2**attempt) * (0.5 + random.random()))
                continue
            except sqlite3.DatabaseError as err:
                raise self._error(err) from None
            break
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException as err:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            if isinstance(err, sqlite3.DatabaseError):
                raise self._error(err) from None
            raise
        finally:
            conn.close()

    def _init_schema(self) -> None:
        deadline = time.monotonic() + self.timeout_s
        while True:
            try:
                with contextlib.closing(self._connect()) as conn:
                    # WAL is a property of the file: set once, every later connection uses it.
                    mode = conn.execute(f"PRAGMA journal_mode = {self._journal_mode()}").fetchone()[0]
                break
            except sqlite3.OperationalError as err:
                if not _is_busy(err) or time.monotonic() > deadline:
                    raise self._error(err) from None
                time.sleep(0.02 + 0.05 * random.random())
            except sqlite3.DatabaseError as err:
                raise self._error(err) from None
        if str(mode).lower() != self._journal_mode():
            log.warning(
                "%s: SQLite refused WAL mode (journal mode %s); concurrent writes will be slower",
                self.path,
                mode,
            )
        with self._write() as conn:
            found = None
            if _has_table(conn, "meta"):
                row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
                found = int(row[0]) if row is not None else None
            if found is not None and found > SCHEMA_VERSION:
                raise self._newer(found)
            for statement in _TABLES:
                conn.execute(statement)
            # One transaction with the version bump: two processes opening an old store migrate it once.
            present = {info[1] for info in conn.execute("PRAGMA table_info(records)")}
            for name, decl in _COLUMNS:
                if name not in present:
                    conn.execute(f"ALTER TABLE records ADD COLUMN {name} {decl}")
            for statement in _INDEXES:
                conn.execute(statement)
            if found is not None and found < SCHEMA_VERSION:
                log.info(
                    "%s: results schema migrated from version %d to %d", self.path, found, SCHEMA_VERSION
                )
            conn.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
                (str(SCHEMA_VERSION),),
            )

    @staticmethod
    def _to_record(row: tuple) -> EvalRecord:
        data = dict(zip(("id", *_NAMES), row, strict=True))
        data["metrics"] = json.loads(data["metrics"])
        data["resumed"] = bool(data["resumed"])
        data["uid"] = data["uid"] or ""
        data["train_run"] = data["train_run"] or ""
        if data["primary_value"] is None:  # SQLite stores NaN as NULL
            data["primary_value"] = float("nan")
        return EvalRecord(**data)

    def _error(self, err: sqlite3.Error) -> SaipError:
        text = str(err)
        if "not a database" in text or "malformed" in text:
            return SaipError(f"{self.path}: not a readable results database ({text})")
        return SaipError(f"{self.path}: results database error: {text}")


def _values(rec: EvalRecord) -> list[object]:
    """A validated record as the INSERT's values, in :data:`_NAMES` order."""
    values = [getattr(rec, name) for name in _NAMES]
    values[_NAMES.index("metrics")] = json.dumps(rec.metrics, sort_keys=True)
    values[_NAMES.index("uid")] = rec.uid or None
    return values


def _sql_literal(value: object) -> str:
    return "NULL" if value is None else repr(value)


def _has_table(conn: sqlite3.Connection, name: str) -> bool:
    return (
        conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone()
        is not None
    )


def _is_busy(err: sqlite3.OperationalError) -> bool:
    text = str(err).lower()
    return "locked" in text or "busy" in text


def default_workspace() -> Path:
    """The workspace of commands given no ``--workspace``: ``$SAIP_WORKSPACE`` or ``./saip-workspace``."""
    return Path(os.environ.get(WORKSPACE_ENV) or DEFAULT_WORKSPACE)


def workspace_db_path(workspace: str | Path) -> Path:
    """Where a workspace keeps its results database."""
    return Path(workspace) / RESULTS_FILE


def open_workspace_store(workspace: str | Path, *, db: str | Path | None = None) -> ResultsStore:
    """Open (creating if needed) the results store of ``workspace``.

    Creates ``<ws>/results.sqlite`` plus the workspace's ``runs/`` and ``data/`` folders.

    Args:
        workspace: The workspace folder.
        db: Another database file to use instead of ``<ws>/results.sqlite``.
    """
    ws = Path(workspace)
    if ws.exists() and not ws.is_dir():
        raise SaipError(f"{ws}: workspace is not a folder")
    for sub in ("runs", "data"):
        (ws / sub).mkdir(parents=True, exist_ok=True)
    return ResultsStore(Path(db) if db is not None else workspace_db_path(ws))


def workspace_records(workspace: str | Path, *, ingest: bool = True) -> list[EvalRecord]:
    """Every record of a workspace, for a report: the stored ones, then the record files not stored yet.

    Where the workspace can be written (and ``ingest``), its record files are ingested first (creating
    ``results.sqlite`` if there is none yet) and the store is read. Where it cannot (read-only media, an
    archive) or ``ingest`` is False (``saip bench plan``), nothing is written: the files whose uid the store
    lacks are read and appended in memory. A workspace without a ``records/`` folder is only read, exactly as
    before record files existed.
    """
    ws = Path(workspace)
    path = workspace_db_path(ws)
    has_files = (ws / RECORDS_DIR).is_dir()
    if ingest and has_files and os.access(ws, os.W_OK) and os.access(ws / RECORDS_DIR, os.W_OK):
        try:
            store = ResultsStore(path)
            store.ingest(ws)
            return store.query()
        except (SaipError, OSError) as err:  # e.g. a full disk: still report, from the files
            log.warning("%s: cannot ingest record files (%s); reading them without storing", ws, err)
    stored = ResultsStore(path, read_only=True).query() if path.is_file() else []
    if has_files:
        known = {rec.uid for rec in stored if rec.uid}
        stored += unrecorded(ws, known)
    return stored
