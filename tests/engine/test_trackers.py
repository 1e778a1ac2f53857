"""Experiment trackers: MLflow's file store and W&B's offline run, fed by fine-tuning, probes and pretraining.

What each tracker wrote is read back from disk: MLflow through its client API, W&B from the offline run's
``.wandb`` transaction log. A test needing a tracker's package skips without it, with the extra to install,
except under CI (``CI=true``), which installs ``[dev]`` (every extra): there a missing package fails.
"""

from __future__ import annotations

import importlib
import json
import os
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from saip_bench.engine import EngineConfig, TrainLogger
from saip_bench.engine import trackers as T
from saip_bench.engine.loop import _config_record
from saip_bench.errors import ConfigError, Interrupted

BACKBONE = "random:test_vit"
REID = ["--task", "reid", "--dataset", "market1501", "--backbone", BACKBONE, "--budget", "smoke"]
# A tiny ViT on tiny views (tests/pretrain_runs.py's), one line and one tracker row per step.
SMALL = [
    "device=cpu", "model.depth=2", "model.embed_dim=32", "model.num_heads=2", "model.mid_block=0",
    "heads.out_dim=64", "heads.hidden_dim=32", "heads.bottleneck_dim=16", "views.local_crops=3",
    "train.batch_size=2", "train.threads=1", "train.tensorboard=false", "train.log_every=1",
]  # fmt: skip


def extra(module: str) -> Any:
    """The tracker's package; a skip naming its extra when it is missing, a failure under CI."""
    if os.environ.get("CI", "").lower() not in ("", "0", "false"):
        try:
            return importlib.import_module(module)
        except ImportError as err:
            pytest.fail(f"CI installs [dev], which holds the {module} extra, yet: {err}")
    reason = f'the {module} tracker needs its extra: pip install "saip-bench[{module}]"'
    return pytest.importorskip(module, reason=reason)


def clean_env(tmp_path: Path) -> dict[str, str]:
    """The environment of a CLI run: no tracker settings of the user's, W&B's own folders in the test's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "WANDB_"))}
    for name in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        env[name] = str(tmp_path / "wandb-home")
    return {**env, "OMP_NUM_THREADS": "1"}


def saip(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "saip_bench.cli.app", *args]
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
    return res


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from saip_bench.datasets import DATASETS

    root = tmp_path_factory.mktemp("data")
    DATASETS.get("market1501").write_synth(root / "Market-1501-v15.09.15", ids=8, images=64, seed=0)
    return root


def mlflow_runs(store: Path) -> list[Any]:
    """Every run of the ``saip-bench`` experiment in the file store ``store``."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=store.resolve().as_uri())
    experiment = client.get_experiment_by_name(T.DEFAULT_PROJECT)
    assert experiment is not None, f"no {T.DEFAULT_PROJECT} experiment in {store}"
    return client.search_runs([experiment.experiment_id])


def mlflow_history(store: Path, run_id: str, key: str) -> list[tuple[int, float]]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=store.resolve().as_uri())
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


def wandb_records(path: Path) -> list[Any]:
    """The records of an offline run's ``run-*.wandb`` file (W&B's LevelDB-style log of protobuf records:
    a 7-byte header, then 32 KiB blocks of chunks, each with a 7-byte checksum/length/type header)."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B transaction log"
    records, pending, pos, block = [], b"", 7, 32768
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # the rest of a block too short for a chunk header is padding
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        chunk, pos = data[pos + 7 : pos + 7 + length], pos + 7 + length
        if kind == 0:
            continue
        pending = chunk if kind in (1, 2) else pending + chunk  # 1 full, 2 first, 3 middle, 4 last
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
    return records


def wandb_run(folder: Path) -> dict[str, Any]:
    """An offline run folder's name, config, history rows and whether it finished."""
    [log] = folder.glob("run-*.wandb")
    out: dict[str, Any] = {"config": {}, "history": [], "exit": None, "name": "", "project": ""}
    for record in wandb_records(log):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            out["name"], out["project"] = record.run.display_name, record.run.project
            out["config"].update({i.key: json.loads(i.value_json) for i in record.run.config.update})
        elif kind == "config":
            out["config"].update({i.key: json.loads(i.value_json) for i in record.config.update})
        elif kind == "history":
            row = {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in record.history.item}
            out["history"].append(row)
        elif kind == "exit":
            out["exit"] = record.exit.exit_code
    return out


# ---------------------------------------------------------------------------------------- config, no package
def test_the_tracker_keys_are_checked_and_change_neither_resume_nor_digest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from saip_bench.datasets import DATASETS
    from saip_bench.evaluate.protocols import config_digest, load_recipe

    monkeypatch.setattr(T, "_installed", lambda module: True)
    with pytest.raises(ConfigError, match="tracker: must be one of none, mlflow, wandb, not 'mlfow'"):
        EngineConfig.from_dict({"tracker": "mlfow"})
    with pytest.raises(ConfigError, match="tracker_dir must be a folder or null"):
        EngineConfig.from_dict({"tracker": "mlflow", "tracker_dir": 3})
    assert EngineConfig.from_dict({"tracker": None}).tracker == "none"
    on = EngineConfig.from_dict({"tracker": "wandb", "tracker_dir": "wb", "tracker_project": "p"})
    assert _config_record(on) == _config_record(EngineConfig())  # a run may resume with a tracker added
    recipe = DATASETS.get("market1501").recipe_path()
    tracked = ["train.tracker=mlflow", "train.tracker_dir=ml", "train.tracker_project=p"]
    for protocol in ("finetune", "frozen"):  # frozen has no train section but the one the override makes
        base = load_recipe(recipe, protocol, "smoke", task="reid")
        same = load_recipe(recipe, protocol, "smoke", task="reid", overrides=tracked)
        assert same["train"]["tracker"] == "mlflow"
        assert config_digest(same) == config_digest(base)
    other = load_recipe(recipe, "finetune", "smoke", task="reid", overrides=["train.lr=0.5"])
    assert config_digest(other) != config_digest(base)


def test_a_missing_package_names_its_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(T, "_installed", lambda module: False)
    with pytest.raises(
        ConfigError, match=r'the mlflow package is not installed; pip install "saip-bench\[mlflow\]"'
    ):
        EngineConfig.from_dict({"tracker": "mlflow"})
    with pytest.raises(ConfigError, match=r"train.tracker=wandb: .*saip-bench\[wandb\]"):
        T.check_tracker("wandb")
    assert T.check_tracker("none") == "none"


class _Recorder(T.Tracker):
    """A tracker that keeps what it is sent, or fails at every call."""

    kind = "fake"

    def __init__(self, fail: bool = False) -> None:
        super().__init__()
        self.run_id, self.fail, self.rows, self.calls = "r", fail, [], 0

    def _log_metrics(self, metrics: dict[str, float], step: int | None) -> None:
        self.calls += 1
        if self.fail:
            raise OSError("disk full")
        self.rows.append((step, metrics))


def test_the_step_log_feeds_the_tracker_on_rank_0_only_and_survives_its_failure(tmp_path: Path) -> None:
    tracker = _Recorder()
    with TrainLogger(tmp_path / "a", 4, log_every=2, tensorboard=False, enabled=True, tracker=tracker) as log:
        for step in range(1, 5):
            log.step(
                step, {"loss": 1.0 / step, "ce": 0.5}, lr=0.1, images_per_s=8.0, scalars={"train/m": 0.9}
            )
        log.metrics(4, {"mAP": 40.0})
    assert [step for step, _ in tracker.rows] == [2, 4, 4]
    assert tracker.rows[0][1] == {
        "loss/loss": 0.5, "loss/ce": 0.5, "train/lr": 0.1, "train/images_per_s": 8.0, "train/m": 0.9
    }  # fmt: skip
    assert tracker.rows[2][1] == {"eval/mAP": 40.0}
    silent = _Recorder()
    with TrainLogger(tmp_path / "b", 4, log_every=1, tensorboard=False, enabled=False, tracker=silent) as log:
        log.step(1, {"loss": 1.0}, lr=0.1)
    assert silent.rows == []
    broken = _Recorder(fail=True)
    with TrainLogger(tmp_path / "c", 4, log_every=1, tensorboard=False, enabled=True, tracker=broken) as log:
        for step in range(1, 5):
            log.step(step, {"loss": 1.0}, lr=0.1)  # no exception: the training goes on
    assert broken.calls == 1  # it warned and was not called again
    assert "step 4/4" in (tmp_path / "c" / "train.log").read_text()


# ----------------------------------------------------------------------------------------------- MLflow
def test_mlflow_run_status_and_a_resumed_run_continuing_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    extra("mlflow")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # the tracker's own setting, taken back after
    store, run_dir = tmp_path / "mlruns", tmp_path / "runs" / "r1"
    with T.tracking("mlflow", run_dir, params={"train": {"lr": 0.1}}, directory=store) as tracker:
        assert tracker is not None and T.active_tracker(run_dir) is tracker
        with T.tracking("mlflow", run_dir, params={"other": 1}, directory=store) as inner:
            assert inner is tracker  # the evaluation's run, not a second one (fit inside dispatch)
        tracker.log_metrics({"loss/loss": 2.0}, step=1)
    assert T.active_tracker(run_dir) is None
    [run] = mlflow_runs(store)
    assert run.info.status == "FINISHED"
    first = json.loads((run_dir / T.TRACKER_FILE).read_text())
    with (
        pytest.raises(Interrupted),
        T.tracking(
            "mlflow", run_dir, params={"train": {"lr": 0.2, "epochs": 3}}, directory=store, resume=True
        ) as again,
    ):
        again.log_metrics({"loss/loss": 1.0}, step=2)
        raise Interrupted("SIGTERM")
    [run] = mlflow_runs(store)
    assert run.info.run_id == first["run_id"] == json.loads((run_dir / T.TRACKER_FILE).read_text())["run_id"]
    assert run.info.run_name == "r1" and run.info.status == "KILLED"
    assert run.data.params["train.lr"] == "0.1"  # mlflow keeps a parameter's first value
    assert run.data.params["train.epochs"] == "3" and "other" not in run.data.params
    assert mlflow_history(store, run.info.run_id, "loss/loss") == [(1, 2.0), (2, 1.0)]
    with pytest.raises(RuntimeError), T.tracking("mlflow", tmp_path / "r2", params={}, directory=store):
        raise RuntimeError("boom")
    statuses = {r.info.run_name: r.info.status for r in mlflow_runs(store)}
    assert statuses == {"r1": "KILLED", "r2": "FAILED"}


@pytest.mark.slow
def test_mlflow_fed_by_a_fine_tuning_and_a_frozen_probe(
    data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    extra("mlflow")
    from saip_bench.evaluate.dispatch import evaluate
    from saip_bench.results import open_workspace_store

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # what the tracker sets for itself
    ws = tmp_path / "ws"
    common = ["--data-root", str(data_root), "--workspace", str(ws), "--device", "cpu"]
    # The real CLI in a fresh process, the store in its working folder: the default ./mlruns.
    saip("evaluate", *REID, *common, "train.tracker=mlflow", "train.log_every=1", cwd=tmp_path,
         env=clean_env(tmp_path))  # fmt: skip
    [run] = mlflow_runs(tmp_path / "mlruns")
    [run_dir] = (ws / "runs" / "market1501").iterdir()
    recipe = json.loads((run_dir / "recipe.json").read_text())
    [record] = open_workspace_store(ws).query(protocol="finetune")
    assert run.info.status == "FINISHED" and run.info.run_name == run_dir.name
    params = run.data.params
    assert params["train.lr"] == str(recipe["train"]["lr"]) and params["dataset"] == "market1501"
    assert params["protocol"] == "finetune" and params["backbone.digest"] == record.backbone_digest
    lines = (run_dir / "train.log").read_text().splitlines()
    steps = [int(line.split(" step ")[1].split("/")[0]) for line in lines if " step " in line]
    assert steps and steps == list(range(1, len(steps) + 1))  # the smoke budget: one short epoch
    for key in ("loss/loss", "loss/id", "loss/triplet", "train/lr", "train/images_per_s"):
        assert [s for s, _ in mlflow_history(tmp_path / "mlruns", run.info.run_id, key)] == steps, key
    assert mlflow_history(tmp_path / "mlruns", run.info.run_id, "eval/mAP") == [
        (steps[-1], record.metrics["mAP"])
    ]
    assert {k: v for k, v in run.data.metrics.items() if k.startswith("final/")} == {
        f"final/{name}": value for name, value in record.metrics.items()
    }
    # A probe that trains nothing: its final metrics still reach the tracker, and the key left the
    # config digest as it is (the run folder of the same evaluation without a tracker).
    store = tmp_path / "probe-store"
    overrides = ["train.tracker=mlflow", f"train.tracker_dir={store}"]
    [done] = evaluate(
        task="reid", dataset="market1501", backbone=BACKBONE, data_root=data_root, workspace=ws,
        protocol="frozen", budget="smoke", device="cpu", overrides=overrides,
    )  # fmt: skip
    [plain] = evaluate(
        task="reid", dataset="market1501", backbone=BACKBONE, data_root=data_root, workspace=ws,
        protocol="frozen", budget="smoke", device="cpu",
    )  # fmt: skip
    assert plain.status == "skipped" and plain.run_dir == done.run_dir
    [probe] = mlflow_runs(store)
    assert probe.data.params["protocol"] == "frozen"
    assert probe.data.metrics == {f"final/{name}": value for name, value in done.record.metrics.items()}


# ------------------------------------------------------------------------------------------------ W&B
@pytest.mark.slow
def test_wandb_offline_fed_by_a_pretraining_and_its_resume(tmp_path: Path) -> None:
    extra("wandb")
    from tests.pretrain.test_distributed import write_lup

    write_lup(tmp_path / "LUP")
    env = clean_env(tmp_path)  # no WANDB_MODE: offline is the default, nothing leaves the machine
    out = tmp_path / "run"
    args = ["pretrain", "--data", str(tmp_path / "LUP"), "--out", str(out)]
    saip(*args, "-c", "smoke_cpu", "--steps", "2", *SMALL, "train.tracker=wandb", "train.tracker_dir=wb",
         cwd=tmp_path, env=env)  # fmt: skip
    [folder] = (tmp_path / "wb" / "wandb").glob("offline-run-*")
    first = wandb_run(folder)
    note = json.loads((out / T.TRACKER_FILE).read_text())
    assert folder.name.endswith(note["run_id"]) and first["exit"] == 0
    assert first["name"] == "run" and first["project"] == T.DEFAULT_PROJECT
    assert first["config"]["train.blr"] == 1.6e-2 and first["config"]["train.tracker"] == "wandb"
    assert first["config"]["model.depth"] == 2 and first["config"]["saip.run_dir"] == str(out.resolve())
    assert [row["_step"] for row in first["history"]] == [1, 2]
    terms = {
        "loss/loss",
        "loss/csm",
        "loss/csr",
        "loss/css",
        "train/lr",
        "train/images_per_s",
        "train/momentum",
    }
    assert all(terms <= set(row) for row in first["history"])
    logged = [line for line in (out / "train.log").read_text().splitlines() if " step 2/2 loss " in line]
    assert f"loss {first['history'][1]['loss/loss']:.4f}" in logged[0]  # the numbers of the step line
    # --resume (the run's own config.yaml, a longer run): the same W&B run id continues at step 3.
    saip(*args, "--resume", "--steps", "3", cwd=tmp_path, env=env)
    second = [f for f in (tmp_path / "wb" / "wandb").glob("offline-run-*") if f != folder]
    assert len(second) == 1 and second[0].name.endswith(note["run_id"])
    assert [row["_step"] for row in wandb_run(second[0])["history"]] == [3]
