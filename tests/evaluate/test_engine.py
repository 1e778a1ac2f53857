"""The shared fine-tuning engine: parameter groups, schedules, training, checkpoints, resume, selection."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from saip_bench.engine import EngineConfig, build_param_groups, fit, lr_factor
from saip_bench.errors import CheckpointError, ConfigError


class _TinyViT(nn.Module):
    """Parameter names shaped like a timm ViT's."""

    def __init__(self, depth: int = 3) -> None:
        super().__init__()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, 4))
        self.pos_embed = nn.Parameter(torch.zeros(1, 2, 4))
        self.patch_embed = nn.Linear(4, 4)
        self.blocks = nn.ModuleList(nn.Linear(4, 4) for _ in range(depth))
        self.norm = nn.LayerNorm(4)


class _Wrapper(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Module()
        self.backbone.model = _TinyViT()
        self.head = nn.Linear(4, 2)


def _lr_of(groups: list[dict], param: torch.Tensor) -> tuple[float, float]:
    for group in groups:
        if any(p is param for p in group["params"]):
            return group["lr"], group["weight_decay"]
    raise AssertionError("parameter not in any group")


def test_layer_decay_and_no_weight_decay_on_biases_norms_tokens() -> None:
    model = _Wrapper()
    groups = build_param_groups(model, lr=1.0, weight_decay=0.05, layer_decay=0.5)
    vit = model.backbone.model
    # 3 blocks: embeddings are layer 0 (0.5^4), block i layer i+1, norm layer 4 (0.5^0), head unscaled.
    assert _lr_of(groups, vit.patch_embed.weight) == (0.5**4, 0.05)
    assert _lr_of(groups, vit.cls_token) == (0.5**4, 0.0)
    assert _lr_of(groups, vit.pos_embed) == (0.5**4, 0.0)
    assert _lr_of(groups, vit.blocks[0].weight) == (0.5**3, 0.05)
    assert _lr_of(groups, vit.blocks[2].bias) == (0.5**1, 0.0)
    assert _lr_of(groups, vit.norm.weight) == (1.0, 0.0)
    assert _lr_of(groups, model.head.weight) == (1.0, 0.05)
    n_params = sum(len(g["params"]) for g in groups)
    assert n_params == len(list(model.parameters()))


def test_backbone_lr_mult_without_layer_decay_and_frozen_params_left_out() -> None:
    model = _Wrapper()
    model.backbone.model.norm.requires_grad_(False)
    groups = build_param_groups(model, lr=2.0, weight_decay=0.1, backbone_lr_mult=0.1)
    assert _lr_of(groups, model.backbone.model.blocks[1].weight)[0] == pytest.approx(0.2)
    assert _lr_of(groups, model.head.weight)[0] == pytest.approx(2.0)
    assert all(p is not model.backbone.model.norm.weight for g in groups for p in g["params"])


def test_lr_schedules() -> None:
    cos = EngineConfig(
        epochs=10, warmup_epochs=2, warmup_start_factor=0.1, schedule="cosine", min_lr_ratio=0.0
    )
    kw = dict(total_steps=100, steps_per_epoch=10, config=cos)
    assert lr_factor(0, **kw) == pytest.approx(0.1)
    assert lr_factor(10, **kw) == pytest.approx(0.55)
    assert lr_factor(20, **kw) == pytest.approx(1.0)
    assert lr_factor(60, **kw) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.5)))
    assert lr_factor(100, **kw) == pytest.approx(0.0, abs=1e-9)
    step = EngineConfig(epochs=10, schedule="step", milestones=(4, 8), gamma=0.1)
    kw = dict(total_steps=100, steps_per_epoch=10, config=step)
    assert [lr_factor(s, **kw) for s in (0, 39, 40, 85)] == pytest.approx([1.0, 1.0, 0.1, 0.01])


def test_config_from_dict_is_strict() -> None:
    config = EngineConfig.from_dict({"epochs": 3, "optimizer": "sgd", "milestones": [1, 2]})
    assert config.milestones == (1, 2) and config.optimizer == "sgd"
    with pytest.raises(ConfigError, match="unknown key"):
        EngineConfig.from_dict({"epoch": 3})
    with pytest.raises(ConfigError, match="optimizer"):
        EngineConfig.from_dict({"optimizer": "lamb"})


def _problem(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(64, 4, generator=gen)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]])
    batches = [(x[i : i + 16], y[i : i + 16]) for i in range(0, 64, 16)]

    def step_fn(model, batch):
        return {"loss": nn.functional.mse_loss(model(batch[0]), batch[1])}

    def evaluate_fn(model):
        return {"neg_mse": -nn.functional.mse_loss(model(x), y).item()}

    return batches, step_fn, evaluate_fn


@pytest.mark.parametrize("optimizer", ["adamw", "sgd"])
def test_fit_learns_and_writes_atomic_checkpoints(tmp_path: Path, optimizer: str) -> None:
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    batches, step_fn, evaluate_fn = _problem()
    before = evaluate_fn(model)["neg_mse"]
    config = EngineConfig(
        epochs=20, optimizer=optimizer, lr=0.1, weight_decay=0.0, warmup_epochs=1, eval_every=5
    )
    seen = []
    result = fit(
        model,
        batches,
        step_fn,
        config=config,
        run_dir=tmp_path,
        device="cpu",
        evaluate_fn=evaluate_fn,
        primary_metric="neg_mse",
        progress=lambda d, done, total: seen.append((done, total)),
    )
    assert result.metrics["neg_mse"] > before / 3
    assert seen[-1] == (80, 80)
    assert [r["epoch"] for r in result.history if "neg_mse" in r] == [5, 10, 15, 20]
    assert (tmp_path / "last.pt").is_file()
    assert json.loads((tmp_path / "history.json").read_text())[-1]["epoch"] == 20
    assert not list(tmp_path.glob(".*.tmp"))


def test_fit_with_lr_zero_leaves_the_weights_unchanged(tmp_path: Path) -> None:
    """lr 0 is the untrained control run some tasks compare against; it must not divide by zero."""
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    batches, step_fn, _ = _problem()
    fit(model, batches, step_fn, config=EngineConfig(epochs=2, lr=0.0), run_dir=tmp_path, device="cpu")
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_resume_continues_from_the_last_epoch(tmp_path: Path) -> None:
    batches, step_fn, evaluate_fn = _problem()
    torch.manual_seed(0)
    full = nn.Linear(4, 1)
    config4 = EngineConfig(epochs=4, lr=0.05, weight_decay=0.0, schedule="constant", max_steps_per_epoch=2)
    fit(full, batches, step_fn, config=config4, run_dir=tmp_path / "a", device="cpu")
    torch.manual_seed(0)
    part = nn.Linear(4, 1)
    run = tmp_path / "b"
    config2 = EngineConfig(epochs=2, lr=0.05, weight_decay=0.0, schedule="constant", max_steps_per_epoch=2)
    fit(part, batches, step_fn, config=config2, run_dir=run, device="cpu")
    # A different config refuses to resume...
    with pytest.raises(CheckpointError, match="another training config"):
        fit(nn.Linear(4, 1), batches, step_fn, config=config4, run_dir=run, device="cpu", resume=True)
    # ... while the same config with more epochs written by hand into the checkpoint continues.
    ckpt = torch.load(run / "last.pt", weights_only=True)
    ckpt["config"]["epochs"] = 4
    torch.save(ckpt, run / "last.pt")
    resumed = nn.Linear(4, 1)
    result = fit(resumed, batches, step_fn, config=config4, run_dir=run, device="cpu", resume=True)
    assert result.resumed_from == 2
    assert [r["epoch"] for r in result.history] == [1, 2, 3, 4]
    assert torch.allclose(resumed.weight, full.weight, atol=1e-6)


def test_select_best_restores_the_best_weights(tmp_path: Path) -> None:
    batches, step_fn, _ = _problem()
    scores = iter([1.0, 5.0, 2.0])
    weights = []

    def evaluate_fn(model):
        weights.append(model.weight.detach().clone())
        return {"score": next(scores)}

    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    config = EngineConfig(epochs=3, lr=0.05, eval_every=1, select="best")
    result = fit(
        model,
        batches,
        step_fn,
        config=config,
        run_dir=tmp_path,
        device="cpu",
        evaluate_fn=evaluate_fn,
        primary_metric="score",
    )
    assert result.selected_epoch == 2 and result.metrics == {"score": 5.0}
    assert torch.allclose(model.weight, weights[1])
    with pytest.raises(ConfigError, match="select: best"):
        fit(model, batches, step_fn, config=config, run_dir=tmp_path / "x", device="cpu")


def test_make_train_loader_is_seeded_and_caps_the_batch() -> None:
    from saip_bench.engine import make_train_loader

    data = torch.utils.data.TensorDataset(torch.arange(10))

    def order(seed: int) -> list[int]:
        loader = make_train_loader(data, batch_size=4, seed=seed, num_workers=0, device="cpu")
        return [int(v) for (batch,) in loader for v in batch]

    assert order(0) == order(0) and order(0) != order(1)  # the seed decides the shuffle, nothing else
    assert len(order(0)) == 8  # drop_last: two full batches of 4
    tiny = torch.utils.data.TensorDataset(torch.arange(3))
    assert make_train_loader(tiny, batch_size=64, seed=0, num_workers=0, device="cpu").batch_size == 3
    one = torch.utils.data.TensorDataset(torch.arange(1))
    assert (
        make_train_loader(one, batch_size=64, seed=0, num_workers=0, device="cpu", min_batch=2).batch_size
        == 2
    )


def test_fit_with_a_seed_repeats_and_leaves_the_callers_rng_alone(tmp_path: Path) -> None:
    """Training that draws from torch's global RNG (dropout here) repeats under ``seed``, and the caller's
    random state afterwards is what it would have been had fit not run."""
    torch.manual_seed(123)
    expected_next = torch.rand(3)

    def run(run_dir: Path) -> torch.Tensor:
        torch.manual_seed(0)
        model = nn.Sequential(nn.Dropout(0.5), nn.Linear(4, 1))
        batches, step_fn, _ = _problem()
        torch.manual_seed(123)
        config = EngineConfig(epochs=2, lr=0.1)
        fit(model, batches, step_fn, config=config, run_dir=run_dir, device="cpu", seed=5)
        assert torch.equal(torch.rand(3), expected_next)
        return model[1].weight.detach().clone()

    assert torch.equal(run(tmp_path / "a"), run(tmp_path / "b"))
