"""Bad numbers, interrupted runs and read-only results (issue 14, points 2, 5, 6 and 7), through the real CLI.

A NaN, infinite or negative learning rate, a negative weight decay, zero epochs or a batch size of 0 is one
line naming the file or override and the key, before anything is created; a loss that goes non-finite stops
the fine-tune with one line naming the run, the step and the loss terms, with no checkpoint or record from
the bad state; Ctrl-C during pretraining exits 130 with one line and a checkpoint that resumes; and
``saip report`` reads a workspace on read-only media without writing a byte.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from saip_bench.results import EvalRecord, open_workspace_store

SAIP = str(Path(sys.executable).with_name("saip"))
EVALUATE = ["evaluate", "--task", "attribute", "--dataset", "pa100k", "--budget", "smoke"]
EVALUATE += [
    "--backbone",
    "random:test_vit",
    "--device",
    "cpu",
    "train.epochs=1",
    "train.max_steps_per_epoch=2",
]
PRETRAIN_FAST = ["train.tensorboard=false", "train.checkpoint_every=0", "heads.out_dim=64"]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic PA-100K (48 images) and LUP crops, shared by the module."""
    root = tmp_path_factory.mktemp("data")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for fmt, images in (("pa100k", "48"), ("lup", "16")):
        subprocess.run(
            [SAIP, "data", "synth", "--format", fmt, "--out", str(root), "--images", images],
            check=True, capture_output=True, env=env,
        )  # fmt: skip
    return root


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """An existing, empty workspace (its store created), so a refusal must leave it byte-identical."""
    ws = tmp_path / "ws"
    open_workspace_store(ws)
    return ws


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        pytest.param(["--protocol", "finetune", "train.lr=.nan"], "train.lr=nan", id="lr-nan"),
        pytest.param(["--protocol", "finetune", "train.lr=.inf"], "train.lr=inf", id="lr-inf"),
        pytest.param(["--protocol", "finetune", "train.lr=-1e-3"], "train.lr=-0.001", id="lr-negative"),
        pytest.param(
            ["--protocol", "finetune", "train.weight_decay=-0.1"],
            "train.weight_decay",
            id="weight-decay-negative",
        ),
        pytest.param(["--protocol", "finetune", "train.epochs=0"], "train.epochs=0", id="epochs-zero"),
        pytest.param(
            ["--protocol", "finetune", "loader.batch_size=0"], "loader.batch_size=0", id="batch-size-zero"
        ),
        pytest.param(["--protocol", "linear", "linear.lr=.nan"], "linear.lr=nan", id="linear-lr-nan"),
    ],
)
def test_evaluate_refuses_a_bad_number_before_creating_anything(
    extra, named, data, workspace, saip_run, snap, refused
) -> None:
    before = snap(workspace, data)
    run = saip_run([*EVALUATE, *extra, "--data-root", data, "--workspace", workspace], cwd=workspace.parent)
    refused(run, names=["override", named], before=before, after_roots=[workspace, data])
    assert "must be" in run.output


def test_a_non_finite_loss_during_fine_tuning_is_one_line_and_saves_nothing(
    data, workspace, saip_run
) -> None:
    # lr 1e30: the first step is finite, it throws the weights to infinity, the second loss is NaN.
    run = saip_run(
        [*EVALUATE, "--protocol", "finetune", "train.lr=1e30", "--data-root", data, "--workspace", workspace],
        cwd=workspace.parent,
    )
    errors = [line for line in run.lines if "error:" in line]
    assert run.returncode == 1 and "Traceback" not in run.output and len(run.lines) <= 3, run.output
    [error] = errors
    # The run directory is named first (it may be removed with the failed run, or kept without a checkpoint).
    run_dir = Path(error.split("error: ", 1)[1].split(": loss is not finite", 1)[0])
    assert (workspace / "runs" / "pa100k") in run_dir.parents, error
    assert "not finite at step 2" in error and "loss=nan" in error
    assert "last.pt" not in error  # no checkpoint exists (checkpoint_every 0): none is pointed at
    for name in ("last.pt", "best.pt", "history.json"):
        assert not (run_dir / name).exists(), name  # nothing saved from the bad state
    assert open_workspace_store(workspace).count() == 0  # no record from the bad state


@pytest.mark.parametrize(
    ("case", "make_args", "named"),
    [
        pytest.param(
            "pretrain-blr-nan",
            lambda tmp: ["--config", "smoke_cpu", "train.blr=.nan"],
            "train.blr=nan",
            id="pretrain-blr-nan",
        ),
        pytest.param(
            "pretrain-blr-negative",
            lambda tmp: ["--config", "smoke_cpu", "train.blr=-1"],
            "train.blr=-1",
            id="pretrain-blr-negative",
        ),
        pytest.param(
            "pretrain-batch-size-zero",
            lambda tmp: ["--config", "smoke_cpu", "train.batch_size=0"],
            "batch_size",
            id="pretrain-batch-size-zero",
        ),
        pytest.param(
            "pretrain-steps-abc-in-yaml",
            lambda tmp: ["--config", _yaml(tmp, "steps: abc")],
            "steps.yaml",
            id="pretrain-steps-abc-in-yaml",
        ),
    ],
)
def test_pretrain_refuses_a_bad_number_naming_its_source(
    case, make_args, named, data, tmp_path, saip_run, snap, refused
) -> None:
    out = tmp_path / "run"
    before = snap(out, data)
    run = saip_run(
        ["pretrain", "--data", data / "LUP", "--out", out, *make_args(tmp_path), *PRETRAIN_FAST], cwd=tmp_path
    )
    refused(run, names=[named], before=before, after_roots=[out, data])
    assert case.startswith("pretrain")


def _yaml(folder: Path, train_line: str) -> str:
    """A pretraining recipe file whose ``train`` section holds one line."""
    path = folder / "steps.yaml"
    path.write_text(f"device: cpu\ntrain:\n  {train_line}\n", encoding="utf-8")
    return str(path)


def test_sigint_during_pretraining_exits_130_with_one_line_and_a_resumable_checkpoint(
    data, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "400", "NO_COLOR": "1"}
    args = [SAIP, "pretrain", "--config", "smoke_cpu", "--data", str(data / "LUP"), "--out", str(out)]
    args += ["--steps", "500", "train.log_every=1", *PRETRAIN_FAST]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    log = out / "train.log"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if log.is_file() and log.read_text(encoding="utf-8").count(" step ") >= 1:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=120)
    lines = [line for line in output.splitlines() if line.strip() and "INFO step" not in line]
    assert proc.returncode == 130, output
    assert "Traceback" not in output and len(lines) <= 3, output
    [error] = [line for line in lines if "error:" in line]
    assert "checkpoint.pt" in error and "interrupted at step" in error and "--resume" in error
    state = json.loads((out / "train_state.json").read_text(encoding="utf-8"))
    assert f"step {state['step']}/500" in error  # the checkpoint holds the step the message names
    assert (out / "checkpoint.pt").is_file() and not list(out.glob("*.tmp*"))


# -- read-only results -------------------------------------------------------------------------------------


def _record(**overrides: object) -> EvalRecord:
    fields: dict[str, object] = dict(
        backbone_digest="a1b2c3d4e5f60718", backbone_name="saip_vit_tiny", pretrain_method="saip",
        task="reid", dataset="market1501", protocol="frozen", budget="smoke", metrics={"mAP": 41.25},
        primary_metric="mAP", primary_value=41.25, config_digest="cfg0001", seed=0, package_version="0.1.0",
        git_revision=None, duration_s=1.5, started_at="2026-11-26T17:00:00+00:00",
        ended_at="2026-11-26T17:00:02+00:00",
    )  # fmt: skip
    fields.update(overrides)
    return EvalRecord(**fields)  # type: ignore[arg-type]


def _v1_store(ws: Path) -> None:
    """A schema-1 store (before ``resumed`` / ``resumed_from_step``), as an archived workspace holds it."""
    ws.mkdir(parents=True)
    conn = sqlite3.connect(ws / "results.sqlite")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    conn.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    columns = [
        name for name in _record().__dataclass_fields__ if name not in ("id", "resumed", "resumed_from_step")
    ]
    conn.execute(f"CREATE TABLE records (id INTEGER PRIMARY KEY AUTOINCREMENT, {', '.join(columns)})")
    rec = _record()
    values = [json.dumps(rec.metrics) if c == "metrics" else getattr(rec, c) for c in columns]
    conn.execute(
        f"INSERT INTO records ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})", values
    )
    conn.commit()
    conn.close()


@pytest.fixture
def read_only_mount(tmp_path: Path) -> Iterator[Path]:
    """A small tmpfs, mounted writable; the test fills it, remounts it read-only; unmounted afterwards."""
    mount = tmp_path / "ro"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8M", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


@pytest.mark.parametrize("schema", ["current", "v1"])
def test_report_reads_a_workspace_on_read_only_media(
    schema, tmp_path, read_only_mount, saip_run, snap
) -> None:
    source = tmp_path / "archive"
    if schema == "current":
        store = open_workspace_store(source)
        store.add(_record())
        store.add(_record(dataset="pa100k", task="attribute", primary_metric="mA", metrics={"mA": 80.5}))
    else:
        _v1_store(source)
    ws = read_only_mount / "ws"
    shutil.copytree(source, ws)
    subprocess.run(["mount", "-o", "remount,ro", str(read_only_mount)], check=True)
    before = snap(read_only_mount)
    run = saip_run(["report", "--workspace", ws], cwd=tmp_path)
    assert run.returncode == 0 and "Traceback" not in run.output, run.output
    assert "saip_vit_tiny" in run.output and "41.2" in run.output
    assert snap(read_only_mount) == before  # not a byte written, no -wal / -shm left
