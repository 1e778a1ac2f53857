"""Record files: how an evaluation job records its result without ever writing SQLite.

SQLite's WAL needs shared memory between the processes that use a database, which network filesystems (NFS,
Lustre) where cluster jobs run do not give. So a finished evaluation writes one small JSON file instead, and
the store ingests the files later (:meth:`ResultsStore.ingest`, run by ``saip report`` before it reads).

Layout: ``<ws>/records/<dataset>/<uid>.json``, one file per evaluation, named by the record's uid (uuid4 hex),
holding ``{"format": "saip-record", "version": 1, "record": {...every EvalRecord field but id...}}``. A file
appears under its final name only complete: it is written to a dot-named ``.tmp`` file in the same folder,
fsynced, renamed (atomic within one folder, on NFS too) and the folder fsynced. A job killed half-way leaves
at most such a temporary file, which every reader here ignores. A record file is never modified afterwards,
so its name alone tells a reader whether it has seen it.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import re
import tempfile
import uuid
from collections.abc import Collection, Iterator
from dataclasses import MISSING, fields, replace
from pathlib import Path

from saip_bench.errors import SaipError
from saip_bench.results.record import SCALE_EPS, EvalRecord

log = logging.getLogger(__name__)

#: The workspace folder that holds record files, one subfolder per dataset.
RECORDS_DIR = "records"
FORMAT = "saip-record"
#: Bump when the file layout changes; a newer file is refused by name, not misread.
FORMAT_VERSION = 1
SUFFIX = ".json"
# A dataset names a folder: one plain name, never a path or a hidden name.
_FOLDER_NAME = re.compile(r"[0-9A-Za-z_][0-9A-Za-z_.-]*")
_REQUIRED = tuple(f.name for f in fields(EvalRecord) if f.default is MISSING and f.default_factory is MISSING)


def records_dir(workspace: str | Path) -> Path:
    """The folder of a workspace's record files (it may not exist yet)."""
    return Path(workspace) / RECORDS_DIR


def write_record_file(workspace: str | Path, record: EvalRecord) -> tuple[Path, EvalRecord]:
    """Write ``record`` as one record file of ``workspace``, atomically and durably.

    Safe from any number of processes at once, on any filesystem that renames atomically within a folder:
    no lock, no database. ``record`` itself is not modified.

    Args:
        workspace: The workspace folder; ``records/<dataset>/`` is created in it if needed.
        record: The finished evaluation. Without a uid it is given a fresh one (uuid4 hex).

    Returns:
        The file written and the validated record as written (with its uid).

    Raises:
        SaipError: The record is invalid, its dataset is not a plain name, or a file with its uid exists.
        OSError: The workspace cannot be written (full disk, read-only); nothing is left under the final name.
    """
    rec = record.validated()
    if not rec.uid:
        rec = replace(rec, uid=uuid.uuid4().hex)
    rec.id = None  # a row id belongs to one store, not to the record
    if not _FOLDER_NAME.fullmatch(rec.dataset):
        raise SaipError(f"evaluation record: dataset {rec.dataset!r} cannot name a records folder")
    folder = records_dir(workspace) / rec.dataset
    final = folder / f"{rec.uid}{SUFFIX}"
    if final.exists():
        raise SaipError(f"{final}: a record file with uid {rec.uid} exists already")
    data = {"format": FORMAT, "version": FORMAT_VERSION, "record": _payload(rec)}
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{rec.uid}.", suffix=".tmp", dir=folder)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(text.encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
        os.rename(tmp, final)
    except BaseException as err:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(err, OSError) and (err.filename is None or str(err.filename) == str(tmp)):
            err.filename = str(final)
        raise
    _fsync_folder(folder)
    log.debug("wrote record file %s", final)
    return final, rec


def read_record_file(path: str | Path) -> EvalRecord:
    """The validated record a record file holds.

    Raises:
        SaipError: One line naming the file: unreadable, not JSON, not a record file, a newer version,
            missing fields, invalid values, or a uid that is not its file name.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise SaipError(f"{path}: not a record file (not UTF-8 text: {err.reason})") from None
    except json.JSONDecodeError as err:
        raise SaipError(f"{path}: not a record file (invalid JSON: {err})") from None
    except OSError as err:
        raise SaipError(f"{path}: cannot read record file ({err.strerror or err})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise SaipError(f'{path}: not a record file (no "format": "{FORMAT}")')
    version = data.get("version")
    if version != FORMAT_VERSION:
        if isinstance(version, int) and version > FORMAT_VERSION:
            raise SaipError(
                f"{path}: record file version {version} is newer than this saip-bench supports "
                f"({FORMAT_VERSION}); upgrade saip-bench"
            )
        raise SaipError(f"{path}: unknown record file version {version!r} (expected {FORMAT_VERSION})")
    body = data.get("record")
    if not isinstance(body, dict):
        raise SaipError(f'{path}: record file has no "record" object')
    missing = [name for name in (*_REQUIRED, "uid") if name not in body]
    if missing:
        raise SaipError(f"{path}: record file lacks {', '.join(missing)}")
    try:
        rec = EvalRecord.from_dict({**body, "id": None}).validated()
    except SaipError as err:
        raise SaipError(f"{path}: {err}") from None
    except (TypeError, ValueError) as err:
        raise SaipError(f"{path}: invalid record ({err})") from None
    if rec.uid != path.name.removesuffix(SUFFIX):
        raise SaipError(f"{path}: record uid {rec.uid!r} is not its file name")
    return rec


def iter_record_files(workspace: str | Path) -> Iterator[Path]:
    """The record files of ``workspace``, sorted; temporary files (a write in progress or killed) skipped."""
    root = records_dir(workspace)
    if not root.is_dir():
        return
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        yield from _files_in(folder)


def record_uid(path: str | Path) -> str:
    """The uid of a record file, from its name alone (the file is not opened)."""
    return Path(path).name.removesuffix(SUFFIX)


def unrecorded(workspace: str | Path, known: Collection[str]) -> list[EvalRecord]:
    """The records of the files whose uid is not in ``known``, oldest first; a malformed file is skipped.

    Only those files are opened. A skipped file gets a warning that names it: one bad file must not hide
    every other result from a report.
    """
    found = []
    for path in iter_record_files(workspace):
        if record_uid(path) in known:
            continue
        try:
            found.append(read_record_file(path))
        except SaipError as err:
            log.warning("skipping a malformed record file: %s", err)
    found.sort(key=lambda rec: (rec.ended_at, rec.uid))
    return found


def find_record(
    workspace: str | Path,
    *,
    backbone_digest: str,
    dataset: str,
    protocol: str,
    config_digest: str,
    scale: float = 1.0,
    train_scale: float | None = None,
) -> EvalRecord | None:
    """A record file of this exact evaluation (weights, dataset, protocol, config, scale and training scale,
    ``scale`` when None), or None.

    For a job that must decide "already recorded?" without opening SQLite: only the files are read, and
    only those of ``dataset``. A malformed file is skipped with a warning (it records nothing usable).
    """
    folder = records_dir(workspace) / dataset
    if not _FOLDER_NAME.fullmatch(dataset) or not folder.is_dir():
        return None
    for path in _files_in(folder):
        try:
            rec = read_record_file(path)
        except SaipError as err:
            log.warning("skipping a malformed record file: %s", err)
            continue
        if (
            rec.backbone_digest == backbone_digest
            and rec.protocol == protocol
            and rec.config_digest == config_digest
            and abs(rec.scale - float(scale)) < SCALE_EPS
            and abs(_trained_at(rec) - float(scale if train_scale is None else train_scale)) < SCALE_EPS
        ):
            return rec
    return None


def _trained_at(rec: EvalRecord) -> float:
    return float(rec.scale if rec.train_scale is None else rec.train_scale)


def _files_in(folder: Path) -> Iterator[Path]:
    try:
        names = sorted(os.listdir(folder))
    except FileNotFoundError:  # removed between listing and reading
        return
    for name in names:
        if name.endswith(SUFFIX) and not name.startswith("."):
            yield folder / name


def _payload(rec: EvalRecord) -> dict[str, object]:
    data = rec.to_dict()
    del data["id"]
    return data


def _fsync_folder(folder: Path) -> None:
    """Make the rename durable; a filesystem that cannot fsync a folder (EINVAL) is left to its own order."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as err:
        if err.errno not in (errno.EINVAL, errno.EBADF, errno.ENOTSUP):
            raise
    finally:
        os.close(fd)
