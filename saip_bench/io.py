"""Atomic file output and digests: a crash never leaves half a file under its final name."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

#: The errno values of a disk fault (read-only, full, over quota, permission denied): bad luck or a bad
#: folder, not a bug; the CLI reports them as one line naming the path (:func:`disk_fault`).
DISK_FAULTS = {
    errno.EROFS: "read-only file system",
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
}


#: Filesystem types shared between machines over a network, where SQLite's WAL mode does not work (its
#: shared-memory index cannot be shared across hosts) and file locks may not be reliable.
NETWORK_FILESYSTEMS = frozenset(
    {"nfs", "nfs4", "lustre", "gpfs", "cifs", "smb3", "smbfs", "beegfs", "ceph", "glusterfs",
     "fuse.glusterfs", "fuse.sshfs", "fuse.cephfs", "panfs", "wekafs", "afs", "9p"}
)  # fmt: skip


def network_filesystem(path: str | Path, mounts: str = "/proc/mounts") -> str | None:
    """The type of the network filesystem ``path`` lies on (``"nfs4"``, ``"lustre"``...), or None.

    Read from ``/proc/mounts`` (the longest mount point above the path's nearest existing folder); None
    where that file is absent (not Linux).
    """
    try:
        table = Path(mounts).read_text()
    except OSError:
        return None
    target = Path(path).absolute()
    while not target.exists() and target != target.parent:
        target = target.parent
    target = target.resolve()
    best, kind = -1, ""
    for line in table.splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        point = parts[1].replace("\\040", " ")
        if (target == Path(point) or Path(point) in target.parents) and len(point) > best:
            best, kind = len(point), parts[2]
    return kind if kind in NETWORK_FILESYSTEMS else None


def disk_fault(err: BaseException) -> str | None:
    """``"PATH: no space left on device"`` for an OSError that is a disk fault, else None."""
    if not isinstance(err, OSError) or err.errno not in DISK_FAULTS:
        return None
    fault = DISK_FAULTS[err.errno]
    return f"{err.filename}: {fault}" if err.filename is not None else fault


def require_writable(folder: str | Path) -> None:
    """Raise the OSError a write into ``folder`` (or its nearest existing parent) would, naming the folder.

    A probe file is created and removed: unlike permission bits, that also sees a read-only mount and a
    full disk's inode limit, and it holds for root too.
    """
    folder = Path(folder)
    probe_dir = next((p for p in (folder, *folder.parents) if p.exists()), Path("."))
    try:
        with tempfile.TemporaryFile(dir=probe_dir, prefix=".saip-probe."):
            pass
    except OSError as err:
        err.filename = str(folder)
        raise


def _missing_top(path: Path) -> Path | None:
    """The outermost folder of ``path`` (itself included) that does not exist yet, or None."""
    top = None
    for folder in (path, *path.parents):
        if folder.exists() or folder.is_symlink():
            break
        top = folder
    return top


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink()


@contextlib.contextmanager
def atomic_path(final: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; on success rename it to ``final``, on error delete it.

    Works for files and for directories (write a whole dataset into the yielded folder). On an error the
    parent folders this call created are removed too, and an OSError that names no file, or the temporary
    one, is made to name ``final`` (what the user asked for; a full disk's ``write`` names nothing).
    """
    final = Path(final)
    created = _missing_top(final.parent)
    tmp: Path | None = None
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
        target = tmp / final.name
        yield target
        if final.is_dir() and not final.is_symlink():
            shutil.rmtree(final)
        os.replace(target, final)
    except BaseException as err:
        if isinstance(err, OSError) and (err.filename is None or (tmp and str(tmp) in str(err.filename))):
            err.filename = str(final)
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp = None
        if created is not None:
            # Only folders still empty: another writer may have put something there meanwhile.
            for folder in (final.parent, *final.parent.parents):
                with contextlib.suppress(OSError):
                    folder.rmdir()
                if folder == created:
                    break
        raise
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def undo_on_error(
    folder: str | Path,
    *,
    restore: tuple[str, ...] = (),
    progress: str | None = None,
    enabled: bool = True,
) -> Iterator[None]:
    """Undo what the block wrote into ``folder`` if it fails, so a refusal leaves nothing half-written.

    If ``folder`` does not exist yet, the outermost folder the block creates for it is removed. If it
    exists, the entries that are new in it are removed and the files named in ``restore`` (small files the
    block rewrites, e.g. ``recipe.json``) get their old bytes back, unless the file named by ``progress``
    (a checkpoint) changed: then the block did resumable work and the folder is kept as it is. An
    :class:`~saip_bench.errors.Interrupted` run (stopped on a signal after saving) and a KeyboardInterrupt
    keep everything.

    Args:
        folder: the folder the block writes (a run directory, a data root).
        restore: names of files in ``folder`` whose bytes are put back on an error.
        progress: name of a file in ``folder`` whose change means the attempt is worth keeping.
        enabled: whether this process undoes anything (rank 0 only under torchrun).
    """
    from saip_bench.errors import Interrupted

    folder = Path(folder)
    created = _missing_top(folder)
    existing: set[str] = set()
    saved: dict[str, bytes] = {}
    marker = None
    if created is None and folder.is_dir():
        existing = set(os.listdir(folder))
        saved = {name: (folder / name).read_bytes() for name in restore if (folder / name).is_file()}
        marker = _stat(folder / progress) if progress else None
    try:
        yield
    except Exception as err:
        if not enabled or isinstance(err, Interrupted):
            raise
        if created is not None:
            _remove(created)
        elif folder.is_dir() and (progress is None or _stat(folder / progress) == marker):
            for name in set(os.listdir(folder)) - existing:
                _remove(folder / name)
            for name, data in saved.items():
                if (folder / name).is_file() and (folder / name).read_bytes() == data:
                    continue
                with contextlib.suppress(OSError):
                    atomic_write_bytes(folder / name, data)
        raise


def _stat(path: Path) -> tuple[int, int] | None:
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_mtime_ns, info.st_size


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def digest_obj(obj: Any) -> str:
    """Stable short digest of a JSON-serialisable object (configs), independent of key order."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def random_init_digest(name: str, seed: int) -> str:
    """The digest of ``random:NAME`` initialised with ``seed``: what ``load_backbone`` gives it and what the
    report keys the random row by (torch-free, so the report can compute it without building a network).

    ``name`` is the architecture with or without the ``random:`` prefix; ``random:NAME@S`` and ``random:NAME``
    at seed S are the same weights and share it.
    """
    arch = name.split(":", 1)[1] if name.startswith("random:") else name
    return digest_obj({"spec": f"random:{arch.partition('@')[0]}", "seed": int(seed)})


def git_revision(cwd: str | Path | None = None) -> str | None:
    """The git commit of the source tree saip_bench runs from, or None outside a checkout."""
    cwd = Path(cwd) if cwd else Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None
