"""The fashion adapter: registry wiring, recipe errors, and `saip data synth` + `saip evaluate` end to end."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from typer.testing import CliRunner

from saip_bench.cli.app import app
from saip_bench.errors import ConfigError
from saip_bench.evaluate.adapter import EvalRequest, TaskAdapter
from saip_bench.evaluate.protocols import PROTOCOLS, load_recipe
from saip_bench.results import open_workspace_store
from saip_bench.tasks.fashion.adapter import FashionAdapter

METRICS = {"AP", "AP50", "AP75", "APs", "APm", "APl", "AP_mask", "AP50_mask", "AP75_mask"}


def test_adapter_satisfies_the_protocol() -> None:
    spec = PROTOCOLS.get("fashionpedia")
    adapter = spec.load_adapter()
    assert isinstance(adapter, FashionAdapter) and isinstance(adapter, TaskAdapter)
    assert spec.task == adapter.task == "fashion" and set(spec.protocols) <= set(adapter.protocols)
    full = load_recipe(spec.recipe_path(), "finetune", "full")
    smoke = load_recipe(spec.recipe_path(), "finetune", "smoke")
    assert full["img_size"] == [1024, 1024] and full["train"]["layer_decay"] < 1
    assert smoke["img_size"] == [256, 256] and smoke["train"]["epochs"] == 1


def _request(root: Path, run_dir: Path, **sections: dict) -> EvalRequest:
    recipe = copy.deepcopy(load_recipe(PROTOCOLS.get("fashionpedia").recipe_path(), "finetune", "smoke"))
    for section, values in sections.items():
        recipe.setdefault(section, {}).update(values)
    return EvalRequest(
        task="fashion", dataset="fashionpedia", data_dir=root, protocol="finetune", budget="smoke",
        recipe=recipe, img_size=(64, 64), run_dir=run_dir,
    )  # fmt: skip


def test_recipe_mistakes_fail_before_training(fashion_root: Path, tmp_path: Path) -> None:
    adapter = FashionAdapter()
    with pytest.raises(ConfigError, match="unknown key"):
        adapter.run(_request(fashion_root, tmp_path, model={"fpn": 3}), backbone=None)
    with pytest.raises(ConfigError, match="supports protocols finetune, not"):
        request = _request(fashion_root, tmp_path)
        adapter.run(EvalRequest(**{**request.__dict__, "protocol": "linear"}), backbone=None)


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
