"""The fashion task on the template: registry wiring, recipe errors, `saip data synth` + `saip evaluate`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
from typer.testing import CliRunner

from saip_bench.cli.app import app
from saip_bench.errors import ConfigError
from saip_bench.evaluate.adapter import EvalRequest, TaskAdapter
from saip_bench.evaluate.protocols import PROTOCOLS, load_recipe
from saip_bench.evaluate.task import Task
from saip_bench.results import open_workspace_store
from saip_bench.tasks.fashion.adapter import FashionAdapter

METRICS = {"AP", "AP50", "AP75", "APs", "APm", "APl", "AP_mask", "AP50_mask", "AP75_mask"}


def _recipe(budget: str = "smoke", overrides: Sequence[str] = ()) -> dict:
    path = PROTOCOLS.get("fashionpedia").recipe_path()
    return load_recipe(path, "finetune", budget, task="fashion", overrides=overrides)


def test_adapter_satisfies_the_protocol() -> None:
    spec = PROTOCOLS.get("fashionpedia")
    adapter = spec.load_adapter()
    assert isinstance(adapter, FashionAdapter) and isinstance(adapter, TaskAdapter)
    assert isinstance(adapter, Task) and adapter.fit_seed_offset == 1  # the engine's seed: seed + 1
    assert spec.task == adapter.task == "fashion" and set(spec.protocols) <= set(adapter.protocols)
    full, smoke = _recipe("full"), _recipe("smoke")
    assert full["img_size"] == [1024, 1024] and full["train"]["layer_decay"] < 1
    assert full["model"]["strides"] == [4, 8, 16, 32] and full["data"]["max_test_images"] is None
    assert smoke["img_size"] == [256, 256] and smoke["train"]["epochs"] == 1
    assert smoke["data"] == {
        "train_split": "train", "test_split": "val", "max_train_images": None, "max_test_images": 16,
        "workers": 0,
    }  # fmt: skip
    assert smoke["eval"] == {"batch_size": 4, "score_thr": 0.05, "max_per_img": 20}


def _request(root: Path, run_dir: Path, protocol: str = "finetune") -> EvalRequest:
    return EvalRequest(
        task="fashion", dataset="fashionpedia", data_dir=root, protocol=protocol, budget="smoke",
        recipe=_recipe(), img_size=(64, 64), run_dir=run_dir, primary_metric="AP",
    )  # fmt: skip


def test_recipe_mistakes_fail_before_training(fashion_root: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown key.*fpn"):
        _recipe(overrides=["model.fpn=3"])
    # The old names of these keys: the splits and limits are data.*, the test-time settings eval.*.
    for old in ("eval.train_images=2", "eval.num_workers=0", "model.score_thr=0.1"):
        with pytest.raises(ConfigError, match="unknown key"):
            _recipe(overrides=[old])
    with pytest.raises(ConfigError, match="supports protocols finetune, not"):
        FashionAdapter().run(_request(fashion_root, tmp_path, protocol="linear"), backbone=None)


@pytest.mark.slow
def test_cli_synth_then_evaluate_smoke(tmp_path: Path) -> None:
    data = tmp_path / "data"
    runner = CliRunner()
    result = runner.invoke(
        app,
        ["data", "synth", "--format", "fashionpedia", "--out", str(data), "--ids", "8", "--images", "40"],
        catch_exceptions=False,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    ws = tmp_path / "ws"
    args = [
        "evaluate", "--task", "fashion", "--budget", "smoke", "--backbone", "random:saip_vit_tiny_patch16",
        "--data-root", str(data), "--workspace", str(ws), "--device", "cpu",
    ]  # fmt: skip
    result = runner.invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    [record] = open_workspace_store(ws).query(dataset="fashionpedia")
    assert record.task == "fashion" and record.protocol == "finetune" and record.primary_metric == "AP"
    assert set(record.metrics) >= METRICS
    # The untrained head scores no box above the 0.05 threshold (AP 0); 20 smoke steps must find garments.
    assert 0 < record.primary_value <= 100 and record.metrics["AP_mask"] >= 0
