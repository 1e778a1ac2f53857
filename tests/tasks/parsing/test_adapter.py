"""The parsing task: flip/multi-scale prediction, the linear protocol, recipe errors, `saip evaluate`."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from saip_bench.datasets import DATASETS
from saip_bench.errors import ConfigError
from saip_bench.evaluate.adapter import TaskAdapter
from saip_bench.evaluate.task import Task
from saip_bench.tasks.parsing.adapter import ParsingAdapter, Predictor
from saip_bench.tasks.parsing.data import flip_permutation, lip
from saip_bench.tasks.parsing.model import ParsingModel

SIZE = (64, 64)
BACKBONE = "random:saip_vit_tiny_patch16"


def _backbone(size: tuple[int, int] = SIZE):
    from saip_bench.backbones import load_backbone

    return load_backbone(BACKBONE, img_size=size)


@pytest.fixture(scope="module")
def lip_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data") / lip.FOLDER
    DATASETS.get("lip").write_synth(root, ids=4, images=12, seed=0)
    return root


def _recipe(**overrides) -> dict:
    recipe = {
        "head": {"pyramid_channels": 32, "head_channels": 32},
        "loader": {"batch_size": 4},
        "data": {"workers": 0},
        "eval": {"batch_size": 4},
        "train": {"epochs": 1, "max_steps_per_epoch": 2, "lr": 1e-3},
    }
    recipe.update(overrides)
    return recipe


def test_adapter_is_a_task_on_the_template() -> None:
    adapter = ParsingAdapter()
    assert isinstance(adapter, Task) and isinstance(adapter, TaskAdapter)
    assert adapter.protocols == ("finetune", "linear") and adapter.backbone_prefix == "pyramid.backbone."


def test_flip_averaging_is_mirror_symmetric_and_scales_restore_the_backbone() -> None:
    torch.manual_seed(0)
    backbone = _backbone()
    model = ParsingModel(backbone, 20, pyramid_channels=16, head_channels=16).eval()
    pos = backbone.model.pos_embed.detach().clone()
    predictor = Predictor(model, SIZE, flip=True, scales=(0.5, 1.0))
    x = torch.randn(2, 3, *SIZE)
    with torch.no_grad():
        logits = predictor(x)
        mirrored = predictor(x.flip(-1))
    assert logits.shape == (2, 20, *SIZE)
    # flip-averaged logits of the mirror are the mirror of the logits with left/right classes swapped
    torch.testing.assert_close(mirrored, logits.flip(-1)[:, flip_permutation()], atol=1e-4, rtol=1e-4)
    assert backbone.img_size == SIZE and torch.equal(backbone.model.pos_embed, pos)


def test_linear_protocol_trains_the_head_not_the_backbone(
    lip_root: Path, tmp_path: Path, parsing_request
) -> None:
    backbone = _backbone()
    before = {k: v.clone() for k, v in backbone.state_dict().items()}
    result = ParsingAdapter().run(parsing_request(lip_root, tmp_path, "linear", _recipe(), SIZE), backbone)
    assert result.primary_metric == "mIoU" and 0.0 <= result.metrics["mIoU"] <= 100.0
    assert {"aAcc", "mAcc", "IoU.background", "IoU.right-shoe"} <= set(result.metrics)
    assert result.extra["train_images"] > 0 and result.extra["selected_epoch"] == 1
    assert all(torch.equal(v, before[k]) for k, v in backbone.state_dict().items())


def test_backbone_prefix_names_the_backbone_inside_the_model(
    lip_root: Path, tmp_path: Path, parsing_request
) -> None:
    """Layer decay and the backbone lr multiplier find the backbone's parameters under the class prefix."""
    adapter = ParsingAdapter()
    backbone = _backbone()
    request = parsing_request(lip_root, tmp_path, "finetune", _recipe(), SIZE)
    model = adapter.build_model(request, backbone, adapter.build_data(request))
    assert adapter.backbone_of(model) is backbone
    names = [n for n, _ in model.named_parameters() if n.startswith(adapter.backbone_prefix)]
    assert len(names) == len(list(backbone.parameters()))


def test_a_run_is_seeded_whatever_the_callers_rng(lip_root: Path, tmp_path: Path, parsing_request) -> None:
    """The template seeds the new head's layers and training with request.seed, and restores the caller's
    RNG; the adapter itself no longer seeds."""
    results = []
    for run, outer in (("a", 5), ("b", 77)):
        torch.manual_seed(outer)
        before = torch.get_rng_state()
        results.append(
            ParsingAdapter().run(
                parsing_request(lip_root, tmp_path / run, "linear", _recipe(), SIZE), _backbone()
            )
        )
        assert torch.equal(torch.get_rng_state(), before)
    assert results[0].metrics == pytest.approx(results[1].metrics, rel=0, abs=0, nan_ok=True)


def test_bad_recipe_and_protocol(lip_root: Path, tmp_path: Path, parsing_request, parsing_recipe) -> None:
    with pytest.raises(ConfigError, match=r"unknown key 'eval\.flpi'"):
        parsing_recipe(tmp_path / "a", _recipe(eval={"flpi": True}), "finetune")
    # data.workers replaced eval.num_workers: the old key names the recipe file
    with pytest.raises(ConfigError, match=r"recipe\.yaml: unknown key 'eval\.num_workers'"):
        parsing_recipe(tmp_path / "b", _recipe(eval={"num_workers": 0}), "finetune")
    adapter = ParsingAdapter()
    request = parsing_request(lip_root, tmp_path / "c", "finetune", _recipe(), SIZE)
    with pytest.raises(ConfigError, match="frozen"):
        adapter.run(replace(request, protocol="frozen"), _backbone())
    for section, match in (({"scales": []}, "eval.scales"), ({"scales": [1.0, -0.5]}, "eval.scales")):
        bad = parsing_request(tmp_path / "no-data", tmp_path / "d", "finetune", _recipe(eval=section), SIZE)
        with pytest.raises(ConfigError, match=match):  # refused before the (missing) data is read
            adapter.run(bad, _backbone())
    bad = parsing_request(
        tmp_path / "no-data", tmp_path / "e", "finetune", _recipe(loss={"name": "focal"}), SIZE
    )
    with pytest.raises(ConfigError, match="loss.name"):
        adapter.run(bad, _backbone())


@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["lip", "cihp"])
def test_synth_then_evaluate_records_a_result(dataset: str, tmp_path: Path) -> None:
    from saip_bench.cli.app import app
    from saip_bench.results import open_workspace_store

    runner = CliRunner()
    data = tmp_path / "data"
    synth = runner.invoke(
        app,
        ["data", "synth", "--format", dataset, "--out", str(data), "--images", "40"],
        catch_exceptions=False,
    )
    assert synth.exit_code == 0, synth.output
    ws = tmp_path / "ws"
    args = ["evaluate", "--task", "parsing", "--dataset", dataset, "--backbone", "random:test_vit",
            "--data-root", str(data), "--workspace", str(ws), "--budget", "smoke",
            "--device", "cpu"]  # fmt: skip
    result = runner.invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    [record] = open_workspace_store(ws).query(task="parsing", dataset=dataset)
    assert record.primary_metric == "mIoU" and record.protocol == "finetune"
    assert 0.0 < record.primary_value <= 100.0
    assert "IoU.background" in record.metrics
