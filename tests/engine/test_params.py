"""Parameter groups: the one no-weight-decay rule, layer decay from timm's group_matcher (ViT, TinyViT)."""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn

from saip_bench.backbones import load_backbone
from saip_bench.engine import build_param_groups, no_weight_decay, weight_decay_groups
from saip_bench.engine.params import build_optimizer, layer_ids


class _Task(nn.Module):
    """A task model as the adapters build them: ``backbone`` (the suite's wrapper) plus a head."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(backbone.embed_dim, 3)


def _scale_of(groups: list[dict], param: torch.Tensor) -> tuple[float, float]:
    matches = [(g["lr_scale"], g["weight_decay"]) for g in groups if any(p is param for p in g["params"])]
    assert len(matches) == 1, "a parameter must be in exactly one group"
    return matches[0]


@pytest.fixture(scope="module")
def tiny_vit() -> _Task:
    torch.manual_seed(0)
    return _Task(load_backbone("random:saip_tiny_vit_5m", img_size=(128, 64)))


@pytest.fixture(scope="module")
def vit() -> _Task:
    torch.manual_seed(0)
    return _Task(load_backbone("random:test_vit", img_size=(64, 32)))


def test_one_no_weight_decay_rule() -> None:
    two_d = torch.zeros(2, 2)
    assert no_weight_decay("blocks.0.norm1.weight", torch.zeros(4))  # rank 1: norms and biases
    assert no_weight_decay("head.bias", torch.zeros(4))
    for name in ("cls_token", "reg_token", "mask_token", "dist_token", "pos_embed", "decoder_pos_embed"):
        assert no_weight_decay(name, torch.zeros(1, 2, 4)), name
    assert not no_weight_decay("blocks.0.attn.qkv.weight", two_d)
    assert not no_weight_decay("stages.1.blocks.0.attn.attention_biases", two_d)  # as before: decayed
    assert not no_weight_decay("patch_embed.proj.weight", torch.zeros(4, 3, 2, 2))


def test_pretraining_and_fine_tuning_split_decay_the_same_way(vit: _Task) -> None:
    decay, no_decay = weight_decay_groups([vit], 0.05)
    groups = build_param_groups(vit, lr=1.0, weight_decay=0.05, layer_decay=0.5)
    undecayed = {id(p) for g in groups if g["weight_decay"] == 0.0 for p in g["params"]}
    assert undecayed == {id(p) for p in no_decay["params"]}
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(vit.parameters()))
    assert id(vit.backbone.model.cls_token) in undecayed and id(vit.backbone.model.pos_embed) in undecayed


def test_weight_decay_groups_take_a_shared_parameter_once() -> None:
    shared = nn.Linear(2, 2)
    decay, no_decay = weight_decay_groups([shared, nn.Sequential(shared)], 0.1)
    assert len(decay["params"]) == 1 and len(no_decay["params"]) == 1


def test_vit_layer_decay_is_unchanged(vit: _Task) -> None:
    """The ViT numbers of the former ``blocks.N`` regex: embeddings 0, block i -> i+1, the rest depth+1."""
    depth = len(vit.backbone.model.blocks)
    groups = build_param_groups(vit, lr=1.0, weight_decay=0.05, layer_decay=0.65)
    for name, param in vit.named_parameters():
        if not name.startswith("backbone."):
            expected = 1.0
        elif match := re.search(r"(?<![0-9]\.)blocks\.(\d+)\.", name):
            expected = 0.65 ** (depth - int(match.group(1)))
        elif any(t in name for t in ("cls_token", "pos_embed", "patch_embed")):
            expected = 0.65 ** (depth + 1)
        else:
            expected = 1.0
        assert _scale_of(groups, param)[0] == expected, name


def test_tiny_vit_gets_distinct_decayed_lrs(tiny_vit: _Task) -> None:
    model = tiny_vit.backbone.model
    groups = build_param_groups(tiny_vit, lr=1.0, weight_decay=0.05, layer_decay=0.5)
    n_blocks = sum(len(stage.blocks) for stage in model.stages)
    scales = sorted({g["lr_scale"] for g in groups})
    # The stem, every block of every stage, and the head norm each get their own lr.
    assert len(scales) == n_blocks + 2
    assert scales[0] == pytest.approx(0.5 ** (n_blocks + 1)) and scales[-1] == 1.0
    stem = _scale_of(groups, model.patch_embed.conv1.conv.weight)[0]
    first = _scale_of(groups, model.stages[0].blocks[0].conv1.conv.weight)[0]
    last = _scale_of(groups, model.stages[-1].blocks[-1].mlp.fc2.weight)[0]
    assert stem < first < last < 1.0
    assert _scale_of(groups, model.head.norm.weight)[0] == 1.0
    # A stage's downsampling learns with the stage's first block.
    down = _scale_of(groups, model.stages[1].downsample.conv1.conv.weight)[0]
    assert down == _scale_of(groups, model.stages[1].blocks[0].attn.qkv.weight)[0]
    assert _scale_of(groups, tiny_vit.head.weight) == (1.0, 0.05)


def test_layer_ids_follow_timm_group_matcher(tiny_vit: _Task) -> None:
    ids = layer_ids(tiny_vit.backbone.model)
    assert ids["patch_embed.conv1.conv.weight"] == 0
    assert ids["stages.0.blocks.0.conv1.conv.weight"] == 1
    assert ids["stages.0.blocks.1.conv1.conv.weight"] == 2
    assert ids["head.norm.weight"] == max(ids.values())


def test_backbone_lr_mult_and_frozen_parameters(vit: _Task) -> None:
    vit.backbone.model.norm.requires_grad_(False)
    try:
        groups = build_param_groups(vit, lr=2.0, weight_decay=0.1, backbone_lr_mult=0.1, layer_decay=None)
    finally:
        vit.backbone.model.norm.requires_grad_(True)
    block = vit.backbone.model.blocks[0].attn.qkv.weight
    assert [g["lr"] for g in groups if any(p is block for p in g["params"])] == [pytest.approx(0.2)]
    assert all(p is not vit.backbone.model.norm.weight for g in groups for p in g["params"])
    assert _scale_of(groups, vit.head.weight) == (1.0, 0.1)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"train": {"lr": float("nan")}}, "train.lr=nan"),
        ({"train": {"lr": float("inf")}}, "train.lr=inf"),
        ({"linear": {"lr": -1.0}}, "linear.lr=-1.0"),
        ({"train": {"weight_decay": -0.1}}, "train.weight_decay"),
        ({"loader": {"batch_size": 0}}, "loader.batch_size=0"),
        ({"train": {"epochs": 0}}, "train.epochs=0"),
        ({"train": {"blr": True}}, "train.blr=True"),
    ],
)
def test_check_hyperparameters_names_the_source_and_key(values, message) -> None:
    from saip_bench.engine.params import check_hyperparameters
    from saip_bench.errors import ConfigError

    with pytest.raises(ConfigError, match=re.escape(f"recipe.yaml: {message}")):
        check_hyperparameters(values, source="recipe.yaml")


def test_check_hyperparameters_passes_sane_values_and_nulls() -> None:
    from saip_bench.engine.params import check_hyperparameters

    check_hyperparameters(
        {"train": {"lr": 0.0, "weight_decay": 0.05, "steps": None, "epochs": 1}, "linear": {"steps": 0}},
        source="recipe.yaml",
    )


def test_build_optimizer_refuses_a_nan_lr_in_one_line() -> None:
    from saip_bench.errors import ConfigError

    groups = [{"params": [nn.Parameter(torch.zeros(2))], "lr": float("nan")}]
    with pytest.raises(ConfigError, match="lr=nan"):
        build_optimizer(groups, lr=1e-3)
