"""Disk faults and leftovers (issue 14): a read-only, full or forbidden disk is one line naming the path, and
a refused command leaves nothing half-written (no run folder, no rewritten config, no partial dataset).

The full and read-only disks are small tmpfs mounts (``mount`` needs root; the cases skip where it is not
permitted). Root ignores permission bits, so a read-only disk is a read-only mount, not a ``chmod``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from saip_bench.io import atomic_path, atomic_write_text, undo_on_error

EVAL = ["evaluate", "--task", "reid", "--backbone", "random:test_vit", "--budget", "smoke", "--device", "cpu"]
PRETRAIN = ["pretrain", "-c", "smoke_cpu", "--steps", "2"]
MARKET = "Market-1501-v15.09.15"
#: Opening a store for writing rewrites its header (schema check); a refused evaluation adds no record.
STORE_FILES = ("results.sqlite", "results.sqlite-wal", "results.sqlite-shm")

_MOUNT_OK: list[bool] = []


def _can_mount(probe: Path) -> bool:
    """Whether this machine lets the tests mount a tmpfs (checked once)."""
    if not _MOUNT_OK:
        probe.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=1M", "tmpfs", str(probe)], capture_output=True
        )
        _MOUNT_OK.append(done.returncode == 0)
        if done.returncode == 0:
            subprocess.run(["umount", str(probe)], check=True)
    return _MOUNT_OK[0]


@contextlib.contextmanager
def tmpfs(path: Path, *, size: str = "3M") -> Iterator[Path]:
    """A ``size`` tmpfs at ``path``, unmounted after (lazily: a failed command may not have let go of it)."""
    if not _can_mount(path.parent / ".mount-probe"):
        pytest.skip("mounting a tmpfs is not permitted here (needs root): no full or read-only disk")
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _filled(path: Path) -> None:
    """Make ``path`` (a tmpfs that may hold files to keep) full."""
    with contextlib.suppress(OSError), open(path / "filler", "wb") as handle:
        while True:
            handle.write(b"\0" * 65536)
            handle.flush()


def _saip(args: list[object], cwd: Path) -> subprocess.CompletedProcess[str]:
    """The CLI in a fresh process, for the module's set-up (the harness's fixtures are per test)."""
    saip = str(Path(sys.executable).with_name("saip"))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NO_COLOR": "1"}
    return subprocess.run([saip, *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One data root (a Market-1501 and a LUP), one finished frozen evaluation and one pretraining run."""
    base = tmp_path_factory.mktemp("world")
    for fmt, images in (("market1501", 48), ("lup", 24)):
        done = _saip(
            ["data", "synth", "--format", fmt, "--out", "data", "--images", images, "--ids", 8], cwd=base
        )
        assert done.returncode == 0, done.stderr
    frozen = _saip(
        [
            *EVAL,
            "--dataset",
            "market1501",
            "--protocol",
            "frozen",
            "--data-root",
            "data",
            "--workspace",
            "ws",
        ],
        cwd=base,
    )
    assert frozen.returncode == 0, frozen.stderr
    pre = _saip([*PRETRAIN, "--data", "data/LUP", "--out", "run", "train.checkpoint_every=1"], cwd=base)
    assert pre.returncode == 0 and (base / "run" / "checkpoint.pt").is_file(), pre.stderr
    return {"base": base, "data": base / "data", "ws": base / "ws", "run": base / "run"}


@pytest.fixture
def case(world: dict[str, Path], tmp_path: Path) -> Path:
    """A fresh case folder holding a copy of the data root."""
    shutil.copytree(world["data"], tmp_path / "data")
    return tmp_path


def _empty_workspace(path: Path) -> Path:
    from saip_bench.results import open_workspace_store

    open_workspace_store(path)
    return path


def _records(ws: Path) -> int:
    from saip_bench.results import open_workspace_store

    return open_workspace_store(ws).count()


# ------------------------------------------------------------------------------------------- disk faults
def test_evaluate_read_only_workspace(case, world, saip_run, refused, snap) -> None:
    with tmpfs(case / "ro") as ro:
        shutil.copytree(world["ws"], ro / "ws")
        subprocess.run(["mount", "-o", "remount,ro", str(ro)], check=True)
        before = snap(ro)
        run = saip_run(
            [*EVAL, "--dataset", "market1501", "--data-root", "data", "--workspace", ro / "ws"], cwd=case
        )
        refused(run, names=["ro/ws", "read-only file system"], before=before, after_roots=[ro])
        assert run.returncode == 1


def test_pretrain_read_only_out(case, saip_run, refused, snap) -> None:
    with tmpfs(case / "ro") as ro:
        subprocess.run(["mount", "-o", "remount,ro", str(ro)], check=True)
        run = saip_run([*PRETRAIN, "--data", "data/LUP", "--out", ro / "run"], cwd=case)
        refused(run, names=["ro/run", "read-only file system"], before=snap(ro), after_roots=[ro])


def test_pretrain_full_disk(case, saip_run, refused, snap) -> None:
    with tmpfs(case / "full") as full:  # 3 MB: the first checkpoint of a ViT-Tiny does not fit
        before = snap(full)
        run = saip_run(
            [*PRETRAIN, "--data", "data/LUP", "--out", full / "run", "train.checkpoint_every=1"], cwd=case
        )
        refused(run, names=["full/run", "no space left on device"], before=before, after_roots=[full])


def test_synth_full_disk(case, saip_run, refused, snap) -> None:
    with tmpfs(case / "full") as full:  # 2000 crops are about 5 MB
        before = snap(full)
        run = saip_run(
            ["data", "synth", "--format", "market1501", "--out", full / "d", "--images", 2000], cwd=case
        )
        refused(run, names=[f"full/d/{MARKET}", "no space left on device"], before=before, after_roots=[full])


def test_synth_all_full_disk_takes_back_the_finished_ones(case, saip_run, refused, snap) -> None:
    with tmpfs(case / "full") as full:
        (full / "d").mkdir()
        (full / "d" / "mine.txt").write_text("kept\n")  # the data root existed: only what synth wrote goes
        before = snap(full)
        run = saip_run(["data", "synth", "--format", "all", "--out", full / "d", "--images", 120], cwd=case)
        refused(run, names=["no space left on device"], before=before, after_roots=[full])


def test_report_output_full_disk(case, world, saip_run, refused, snap) -> None:
    with tmpfs(case / "full") as full:
        _filled(full)
        before = snap(full)
        run = saip_run(["report", "--workspace", world["ws"], "--output", full / "r.md"], cwd=case)
        refused(run, names=["full/r.md", "no space left on device"], before=before, after_roots=[full])


@pytest.mark.parametrize("code", [errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EROFS])
def test_disk_faults_are_one_line(code: int, capsys: pytest.CaptureFixture[str]) -> None:
    """The wrapper every command has: a disk fault anywhere below it is one line naming path and fault.

    (A permission-denied data root cannot be made for root, who reads every folder; the wrapper is where
    that case lands, so it is tested here directly.)
    """
    import typer

    from saip_bench.cli.common import user_errors
    from saip_bench.io import DISK_FAULTS

    @user_errors
    def command() -> None:
        raise OSError(code, os.strerror(code), "data/Market/bounding_box_train")

    with pytest.raises(typer.Exit) as exit_info:
        command()
    assert exit_info.value.exit_code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: data/Market/bounding_box_train: {DISK_FAULTS[code]}"]


def test_other_os_errors_stay_bugs() -> None:
    from saip_bench.cli.common import user_errors

    @user_errors
    def command() -> None:
        raise OSError(errno.EIO, "Input/output error", "x")

    with pytest.raises(OSError, match="Input/output error"):
        command()


# ------------------------------------------------------------------------------------ nothing half-written
@pytest.mark.parametrize(
    ("label", "extra", "names"),
    [
        pytest.param(
            "key",
            ["--dataset", "market1501", "train.bogus=1"],
            ["bogus", "reid_market1501"],
            id="bad-recipe-key",
        ),
        pytest.param("folder", ["--dataset", "msmt17"], ["MSMT17"], id="missing-dataset-folder"),
        pytest.param(
            "image",
            ["--dataset", "market1501", "--protocol", "frozen"],
            ["not a readable image"],
            id="corrupt-image",
        ),
    ],
)
def test_refused_evaluation_leaves_no_run_dir(label, extra, names, case, saip_run, refused, snap) -> None:
    ws = _empty_workspace(case / "ws")
    bad = sorted((case / "data" / MARKET / "query").glob("*.jpg"))[0]
    if label == "image":
        bad.write_bytes(b"not a jpeg")
        names = [bad.name, *names]
    before = snap(ws)  # the whole workspace, results.sqlite included: opening the store writes nothing
    run = saip_run([*EVAL, *extra, "--data-root", "data", "--workspace", ws], cwd=case)
    refused(run, names=names, before=before, after_roots=[ws])
    assert _records(ws) == 0


def test_refused_evaluation_in_a_fresh_workspace_creates_nothing(case, saip_run, refused, snap) -> None:
    """A recipe refused before the workspace is touched: the workspace is not even created."""
    before = snap(case / "ws")
    run = saip_run(
        [*EVAL, "--dataset", "market1501", "train.bogus=1", "--data-root", "data", "--workspace", "ws"],
        cwd=case,
    )
    refused(run, names=["bogus"], before=before, after_roots=[case / "ws"])


def test_refused_resume_keeps_the_run_dir_as_it_was(case, world, saip_run, refused, snap) -> None:
    """An existing run folder (here: a finished frozen run's, without its record) resumed on bad data."""
    ws = _empty_workspace(case / "ws")
    shutil.copytree(world["ws"] / "runs", ws / "runs", dirs_exist_ok=True)
    [run_dir] = (ws / "runs" / "market1501").iterdir()
    bad = sorted((case / "data" / MARKET / "query").glob("*.jpg"))[0]
    bad.write_bytes(b"\xff\xd8 truncated")
    before = snap(ws / "runs")
    run = saip_run(
        [
            *EVAL,
            "--dataset",
            "market1501",
            "--protocol",
            "frozen",
            "--resume",
            "--data-root",
            "data",
            "--workspace",
            ws,
        ],
        cwd=case,
    )
    refused(run, names=[bad.name], before=before, after_roots=[ws / "runs"], allow=["train.log"])
    assert (run_dir / "recipe.json").is_file() and _records(ws) == 0


def test_refused_pretraining_leaves_no_run(case, saip_run, refused, snap) -> None:
    before = snap(case / "run")
    run = saip_run([*PRETRAIN, "--data", "data/LUP", "--out", "run", "train.betas=[2,3]"], cwd=case)
    refused(run, names=["train.betas"], before=before, after_roots=[case / "run"])


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _malicious(path: Path, marker: Path) -> None:
    import torch

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({"format_version": 1, "model": Payload()}, path)


@pytest.mark.parametrize("kind", ["truncated-checkpoint", "malicious-checkpoint"])
def test_refused_resume_changes_nothing(kind, case, world, saip_run, refused, snap) -> None:
    run_dir = case / "run"
    shutil.copytree(world["run"], run_dir)
    marker = case / "pwned"
    if kind == "truncated-checkpoint":
        _truncate(run_dir / "checkpoint.pt")
    else:
        _malicious(run_dir / "checkpoint.pt", marker)
    before = snap(run_dir)
    # --steps 4 would change config.yaml's train.steps (2 -> 4) if anything were written before the check.
    run = saip_run(["pretrain", "--data", "data/LUP", "--out", "run", "--resume", "--steps", 4], cwd=case)
    refused(run, names=["run/checkpoint.pt"], before=before, after_roots=[run_dir])
    assert len(run.lines) == 1, run.output
    assert not marker.exists(), "the checkpoint's pickle ran code"


# ------------------------------------------------------------------------------------- the building blocks
def test_atomic_path_failure_leaves_nothing_and_names_the_final_path(tmp_path: Path) -> None:
    final = tmp_path / "new" / "deeper" / "report.md"
    with pytest.raises(OSError) as err_info, atomic_path(final) as tmp:
        tmp.write_text("half")
        raise OSError(errno.ENOSPC, "No space left on device")
    assert err_info.value.filename == str(final)
    assert list(tmp_path.iterdir()) == []  # the temporary folder and the parents it made are gone


def test_undo_on_error_puts_an_existing_folder_back(tmp_path: Path) -> None:
    (tmp_path / "recipe.json").write_text("old")
    (tmp_path / "last.pt").write_text("checkpoint")
    with pytest.raises(RuntimeError), undo_on_error(tmp_path, restore=("recipe.json",), progress="last.pt"):
        atomic_write_text(tmp_path / "recipe.json", "new")
        (tmp_path / "history.json").write_text("{}")
        raise RuntimeError("refused")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt", "recipe.json"]
    assert (tmp_path / "recipe.json").read_text() == "old"


def test_undo_on_error_keeps_an_attempt_whose_checkpoint_moved_on(tmp_path: Path) -> None:
    (tmp_path / "recipe.json").write_text("old")
    with pytest.raises(RuntimeError), undo_on_error(tmp_path, restore=("recipe.json",), progress="last.pt"):
        atomic_write_text(tmp_path / "recipe.json", "new")
        (tmp_path / "last.pt").write_text("a newer checkpoint")
        raise RuntimeError("refused late")
    assert (tmp_path / "recipe.json").read_text() == "new" and (tmp_path / "last.pt").is_file()
