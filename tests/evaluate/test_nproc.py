"""`saip evaluate --nproc-per-node 2`: the same metrics as one process, ranks in sync, one record, one line.

Each run is the real command in a fresh process, relaunching itself under torchrun (2 gloo workers on CPU).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from saip_bench.cli.app import app
from saip_bench.results import open_workspace_store

BACKBONE = "random:test_vit"  # timm's tiny test ViT keeps a run to seconds

# Test-only instrumentation, loaded by every worker through PYTHONPATH (production code stays as it is):
# after the engine's fit, each rank writes its world size, the labels of the batches it trained on and a
# digest of its final weights.
SITECUSTOMIZE = r"""
import os
if "RANK" in os.environ and os.environ.get("SAIP_TEST_DIGESTS"):
    import hashlib, json
    import saip_bench.engine as engine
    import torch.distributed as dist

    _fit = engine.fit

    def fit(model, loader, step_fn, **kwargs):
        labels = []

        def step(train_model, batch):
            labels.append(batch[1].tolist())
            return step_fn(train_model, batch)

        result = _fit(model, loader, step, **kwargs)
        def digest(named):
            sha = hashlib.sha256()
            for name, tensor in sorted(named):
                sha.update(name.encode() + tensor.detach().cpu().contiguous().numpy().tobytes())
            return sha.hexdigest()

        row = {
            "world": dist.get_world_size() if dist.is_initialized() else 1,
            "labels": labels,
            "digest": digest(model.state_dict().items()),  # weights and BatchNorm statistics
        }
        path = os.path.join(os.environ["SAIP_TEST_DIGESTS"], f"rank{os.environ['RANK']}.json")
        with open(path, "w") as handle:
            json.dump(row, handle)
        return result

    engine.fit = fit
"""


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from saip_bench.datasets import DATASETS

    root = tmp_path_factory.mktemp("data")
    DATASETS.get("market1501").write_synth(root / "Market-1501-v15.09.15", ids=8, images=64, seed=0)
    return root


def _args(data_root: Path, ws: Path, *extra: str) -> list[str]:
    return [
        "evaluate", "--task", "reid", "--dataset", "market1501", "--backbone", BACKBONE,
        "--data-root", str(data_root), "--workspace", str(ws), "--budget", "smoke", "--device", "cpu", *extra,
    ]  # fmt: skip


def _saip(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "saip_bench.cli.app", *args]
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run(cmd, env=full_env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_frozen_on_two_processes_equals_one_process(data_root: Path, tmp_path: Path) -> None:
    two = _saip(*_args(data_root, tmp_path / "two", "--protocol", "frozen", "--nproc-per-node", "2"))
    assert two.returncode == 0, (two.stdout + two.stderr)[-3000:]
    one = CliRunner().invoke(app, _args(data_root, tmp_path / "one", "--protocol", "frozen"))
    assert one.exit_code == 0, one.output
    [rec2] = open_workspace_store(tmp_path / "two").query()  # rank 0 alone recorded it
    [rec1] = open_workspace_store(tmp_path / "one").query()
    assert rec2.metrics == rec1.metrics  # exactly equal: each rank ranks the whole gallery as one process
    assert set(rec2.metrics) == {"mAP", "R1", "R5", "R10"}
    assert len(list((tmp_path / "two" / "records").rglob("*.json"))) == 1
    assert two.stdout.count("saip evaluate: reid") == 1  # one table, rank 0's


@pytest.mark.slow
def test_finetune_on_two_processes_keeps_ranks_in_sync(data_root: Path, tmp_path: Path) -> None:
    hooks, digests = tmp_path / "hooks", tmp_path / "digests"
    hooks.mkdir()
    digests.mkdir()
    (hooks / "sitecustomize.py").write_text(SITECUSTOMIZE, encoding="utf-8")
    env = {"PYTHONPATH": str(hooks), "SAIP_TEST_DIGESTS": str(digests)}
    extra = ["--protocol", "finetune", "--nproc-per-node", "2", "sampler.p=2", "sampler.k=2"]
    res = _saip(*_args(data_root, tmp_path / "ws", *extra), env=env)
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
    ranks = [json.loads((digests / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world"] for r in ranks] == [2, 2]
    assert len(ranks[0]["labels"]) == len(ranks[1]["labels"]) >= 2  # the same number of steps
    assert ranks[0]["labels"] != ranks[1]["labels"]  # each rank trained on its own share of the batches
    assert ranks[0]["digest"] == ranks[1]["digest"], "the ranks' final weights differ"
    [record] = open_workspace_store(tmp_path / "ws").query()
    assert record.protocol == "finetune" and 0 <= record.primary_value <= 100


@pytest.mark.slow
def test_an_error_on_every_rank_is_one_line(tmp_path: Path) -> None:
    res = _saip(*_args(tmp_path / "nowhere", tmp_path / "ws", "--nproc-per-node", "2"))
    assert res.returncode == 1
    errors = [line for line in res.stderr.splitlines() if line.strip()]
    assert errors == [f"error: {tmp_path / 'nowhere'}: data root is not a folder"], res.stderr[-3000:]
    assert not (tmp_path / "ws").exists()
