"""The detection task on the template, through the shared engine, and `saip data synth` + `saip evaluate`."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from saip_bench.errors import ConfigError
from saip_bench.evaluate.adapter import EvalRequest, TaskAdapter
from saip_bench.evaluate.protocols import PROTOCOLS, load_recipe
from saip_bench.evaluate.task import Task
from saip_bench.tasks.detection.adapter import DetectionAdapter

SIZE = (128, 192)  # tiny inputs: the tests check the plumbing and a learning signal, not accuracy


def _recipe(overrides: Sequence[str] = ()) -> dict:
    path = PROTOCOLS.get("crowdhuman").recipe_path()
    return load_recipe(path, "finetune", "smoke", task="detection", overrides=overrides)


def _request(
    data_dir: Path, run_dir: Path, protocol: str = "finetune", overrides: Sequence[str] = ()
) -> EvalRequest:
    return EvalRequest(
        task="detection", dataset="crowdhuman", data_dir=data_dir, protocol=protocol, budget="smoke",
        recipe=_recipe(overrides), img_size=SIZE, run_dir=run_dir, seed=0, primary_metric="AP",
    )  # fmt: skip


def _backbone():
    from saip_bench.backbones import load_backbone

    return load_backbone("random:saip_vit_tiny_patch16", img_size=SIZE)


def test_smoke_finetune_beats_the_untrained_detector(crowdhuman_master: Path, tmp_path: Path) -> None:
    adapter = DetectionAdapter()
    assert isinstance(adapter, Task) and isinstance(adapter, TaskAdapter) and adapter.task == "detection"
    torch.manual_seed(123)  # the template seeds the run: the caller's RNG state must not matter
    request = _request(
        crowdhuman_master, tmp_path / "run",
        # the untrained head's low scores must count too (score_thr 0), for a fair comparison
        overrides=["data.max_train_images=8", "data.max_test_images=6", "eval.untrained=true",
                   "eval.score_thr=0.0"],
    )  # fmt: skip
    result = adapter.run(request, _backbone())
    assert result.primary_metric == "AP" and set(result.metrics) == {"AP", "MR-2", "JI"}
    before = result.extra["untrained"]
    assert result.metrics["AP"] > before["AP"] + 5.0
    assert result.metrics["JI"] > before["JI"] and result.metrics["MR-2"] <= before["MR-2"]
    assert result.extra["train_images"] == 8 and result.extra["test_images"] == 6
    assert result.extra["selected_epoch"] == 2 and result.extra["test_persons"] > 0
    assert (tmp_path / "run" / "last.pt").is_file()

    # Same request, another caller RNG state: the same numbers (flips and samplers are seeded per run).
    torch.manual_seed(7)
    again = adapter.run(dataclasses.replace(request, run_dir=tmp_path / "again"), _backbone())
    assert again.metrics == result.metrics


def test_recipe_errors_are_config_errors(crowdhuman_master: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="supports protocols finetune, not"):
        DetectionAdapter().run(_request(crowdhuman_master, tmp_path, protocol="linear"), None)
    with pytest.raises(ConfigError, match="unknown key.*stacked_conv"):
        _recipe(["head.stacked_conv=2"])
    # The workers of every loader are data.workers (the suite's vocabulary), not the old eval.num_workers.
    with pytest.raises(ConfigError, match="unknown key.*num_workers"):
        _recipe(["eval.num_workers=0"])
    with pytest.raises(ConfigError, match="splits train, val"):
        request = _request(crowdhuman_master, tmp_path, overrides=["data.test_split=test"])
        DetectionAdapter().run(request, None)


def test_smoke_recipe_reads_every_section_from_the_defaults() -> None:
    recipe = _recipe()
    assert recipe["data"] == {
        "train_split": "train", "test_split": "val", "max_train_images": 16, "max_test_images": 12,
        "workers": 0,
    }  # fmt: skip
    assert recipe["eval"]["score_thr"] == 0.02 and recipe["eval"]["nms_iou"] == 0.5  # smoke and default
    assert recipe["head"]["anchor_ratios"] == [1.0, 2.0, 3.0] and recipe["head"]["pyramid_channels"] == 128
    full = load_recipe(PROTOCOLS.get("crowdhuman").recipe_path(), "finetune", "full", task="detection")
    assert full["data"]["max_train_images"] is None and full["loader"]["batch_size"] == 16


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
