"""The detection adapter through the shared engine, and `saip data synth` + `saip evaluate` end to end."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from saip_bench.errors import ConfigError
from saip_bench.evaluate.adapter import EvalRequest, TaskAdapter
from saip_bench.evaluate.protocols import PROTOCOLS, load_recipe
from saip_bench.tasks.detection.adapter import DetectionAdapter

SIZE = (128, 192)  # tiny inputs: the tests check the plumbing and a learning signal, not accuracy


def _request(data_dir: Path, run_dir: Path, protocol: str = "finetune", **changes: dict) -> EvalRequest:
    recipe = copy.deepcopy(load_recipe(PROTOCOLS.get("crowdhuman").recipe_path(), "finetune", "smoke"))
    for section, values in changes.items():
        recipe.setdefault(section, {}).update(values)
    return EvalRequest(
        task="detection", dataset="crowdhuman", data_dir=data_dir, protocol=protocol, budget="smoke",
        recipe=recipe, img_size=SIZE, run_dir=run_dir, seed=0,
    )  # fmt: skip


def _backbone():
    from saip_bench.backbones import load_backbone

    return load_backbone("random:saip_vit_tiny_patch16", img_size=SIZE)


def test_smoke_finetune_beats_the_untrained_detector(crowdhuman_master: Path, tmp_path: Path) -> None:
    adapter = DetectionAdapter()
    assert isinstance(adapter, TaskAdapter)
    torch.manual_seed(123)  # the adapter seeds its own run: the caller's RNG state must not matter
    request = _request(
        crowdhuman_master, tmp_path / "run",
        data={"max_train_images": 8, "max_test_images": 6},
        eval={"untrained": True},
        test={"score_thr": 0.0},  # the untrained head's low scores must count too, for a fair comparison
    )  # fmt: skip
    result = adapter.run(request, _backbone())
    assert result.primary_metric == "AP" and set(result.metrics) == {"AP", "MR-2", "JI"}
    before = result.extra["untrained"]
    assert result.metrics["AP"] > before["AP"] + 5.0
    assert result.metrics["JI"] > before["JI"] and result.metrics["MR-2"] <= before["MR-2"]
    assert result.extra["train_images"] == 8 and result.extra["test_images"] == 6
    assert (tmp_path / "run" / "last.pt").is_file()

    # Same request, another caller RNG state: the same numbers (flips and samplers are seeded per run).
    torch.manual_seed(7)
    again = adapter.run(dataclasses.replace(request, run_dir=tmp_path / "again"), _backbone())
    assert again.metrics == result.metrics


def test_recipe_errors_are_config_errors(crowdhuman_master: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="supports protocols finetune, not"):
        DetectionAdapter().run(_request(crowdhuman_master, tmp_path, protocol="linear"), None)
    with pytest.raises(ConfigError, match="unknown key.*stacked_conv"):
        DetectionAdapter().run(_request(crowdhuman_master, tmp_path, head={"stacked_conv": 2}), None)
    with pytest.raises(ConfigError, match="splits train, val"):
        DetectionAdapter().run(_request(crowdhuman_master, tmp_path, data={"test_split": "test"}), None)


@pytest.mark.slow
def test_cli_synth_then_evaluate_records_a_result(tmp_path: Path) -> None:
    from saip_bench.cli.app import app
    from saip_bench.results import open_workspace_store

    root, ws = tmp_path / "data", tmp_path / "ws"
    runner = CliRunner()
    synth = runner.invoke(
        app, ["data", "synth", "--format", "crowdhuman", "--out", str(root), "--images", "40"]
    )
    assert synth.exit_code == 0, synth.output
    args = [
        "evaluate", "--task", "detection", "--backbone", "random:saip_vit_tiny_patch16",
        "--data-root", str(root), "--workspace", str(ws), "--budget", "smoke", "--device", "cpu",
    ]  # fmt: skip
    done = runner.invoke(app, args, catch_exceptions=False)
    assert done.exit_code == 0, done.output
    [record] = open_workspace_store(ws).query(dataset="crowdhuman")
    assert record.protocol == "finetune" and record.primary_metric == "AP"
    assert set(record.metrics) == {"AP", "MR-2", "JI"} and 0.0 <= record.primary_value <= 100.0
