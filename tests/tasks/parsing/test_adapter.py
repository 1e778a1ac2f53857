"""The parsing adapter: flip/multi-scale prediction, the linear protocol, and `saip evaluate` end to end."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from saip_bench.errors import ConfigError
from saip_bench.evaluate.adapter import EvalRequest, TaskAdapter
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
    lip.write_synth(root, ids=4, images=12, seed=0)
    return root


def _recipe(**overrides) -> dict:
    recipe = {
        "head": {"pyramid_channels": 32, "head_channels": 32},
        "loader": {"batch_size": 4},
        "eval": {"batch_size": 4, "num_workers": 0},
        "train": {"epochs": 1, "max_steps_per_epoch": 2, "lr": 1e-3},
    }
    recipe.update(overrides)
    return recipe


def test_adapter_satisfies_the_protocol() -> None:
    assert isinstance(ParsingAdapter(), TaskAdapter)


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


def test_linear_protocol_trains_the_head_not_the_backbone(lip_root: Path, tmp_path: Path) -> None:
    backbone = _backbone()
    before = {k: v.clone() for k, v in backbone.state_dict().items()}
    request = EvalRequest("parsing", "lip", lip_root, "linear", "smoke", _recipe(), SIZE, tmp_path)
    result = ParsingAdapter().run(request, backbone)
    assert result.primary_metric == "mIoU" and 0.0 <= result.metrics["mIoU"] <= 100.0
    assert {"aAcc", "mAcc", "IoU.background", "IoU.right-shoe"} <= set(result.metrics)
    assert all(torch.equal(v, before[k]) for k, v in backbone.state_dict().items())


def test_bad_recipe_and_protocol(lip_root: Path, tmp_path: Path) -> None:
    adapter = ParsingAdapter()
    request = EvalRequest("parsing", "lip", lip_root, "finetune", "smoke", _recipe(eval={"flpi": True}), SIZE,
                          tmp_path)  # fmt: skip
    with pytest.raises(ConfigError, match="flpi"):
        adapter.run(request, _backbone())
    with pytest.raises(ConfigError, match="frozen"):
        adapter.run(EvalRequest(**{**request.__dict__, "protocol": "frozen"}), _backbone())


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
