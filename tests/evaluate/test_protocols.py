"""The protocol view of the dataset registry, recipe resolution, budgets and scaled input sizes."""

from __future__ import annotations

from pathlib import Path

import pytest

from saip_bench.datasets import DATASETS
from saip_bench.errors import ConfigError
from saip_bench.evaluate.budgets import default_overrides
from saip_bench.evaluate.protocols import (
    PROTOCOLS,
    config_digest,
    datasets_for_task,
    load_recipe,
    scaled_size,
)

RECIPE = """
img_size: [256, 128]
seed: 3
eval: {batch_size: 64, flip: true}
protocols:
  finetune:
    train: {epochs: 120, lr: 0.008, warmup_epochs: 5}
    eval: {batch_size: 32}
  frozen: {}
budgets:
  smoke:
    frozen: {eval: {max_query: 10}}
"""


@pytest.fixture
def recipe(tmp_path: Path) -> Path:
    path = tmp_path / "r.yaml"
    path.write_text(RECIPE)
    return path


def test_recipe_merges_common_protocol_and_budget(recipe: Path) -> None:
    full = load_recipe(recipe, "finetune", "full")
    assert full["train"]["epochs"] == 120 and full["eval"] == {"batch_size": 32, "flip": True}
    assert full["seed"] == 3 and full["budget"] == "full" and full["protocol"] == "finetune"
    short = load_recipe(recipe, "finetune", "short")
    assert short["train"]["epochs"] == 30 and short["train"]["warmup_epochs"] <= 30 / 4
    smoke = load_recipe(recipe, "finetune", "smoke")
    assert smoke["train"]["epochs"] == 1 and smoke["train"]["max_steps_per_epoch"] == 4
    frozen = load_recipe(recipe, "frozen", "smoke")
    assert "train" not in frozen and frozen["eval"] == {"batch_size": 64, "flip": True, "max_query": 10}


def test_recipe_errors_name_the_problem(recipe: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no protocol 'linear'"):
        load_recipe(recipe, "linear", "full")
    with pytest.raises(ConfigError, match="unknown protocol"):
        load_recipe(recipe, "zero-shot", "full")
    with pytest.raises(ConfigError, match="unknown budget"):
        load_recipe(recipe, "finetune", "huge")
    bad = tmp_path / "bad.yaml"
    bad.write_text("protocols: [1, 2\n")
    with pytest.raises(ConfigError, match="bad.yaml"):
        load_recipe(bad, "finetune", "full")


def test_budget_defaults() -> None:
    assert default_overrides("full", {"epochs": 10}) == {}
    assert default_overrides("short", {"epochs": 10})["epochs"] == 3


def test_protocol_view_is_the_datasets_with_protocols() -> None:
    assert PROTOCOLS.names() == [name for name, spec in DATASETS.items() if spec.protocols]
    for name, spec in PROTOCOLS.items():
        assert spec is DATASETS.get(name)  # the same spec object: every fact is declared once
    assert datasets_for_task("pose") == ["coco_keypoints", "coco_wholebody"]


def test_registry_entries_are_datasets_with_shipped_reid_recipes() -> None:
    assert datasets_for_task("reid") == ["market1501", "msmt17"]
    for name in datasets_for_task("reid"):
        spec = PROTOCOLS.get(name)
        for protocol in spec.protocols:
            for budget in ("full", "short", "smoke"):
                resolved = load_recipe(spec.recipe_path(), protocol, budget)
                assert resolved["img_size"] == [256, 128]
    with pytest.raises(ConfigError, match="valid tasks"):
        datasets_for_task("juggling")


def test_scaled_size_rounds_to_the_patch() -> None:
    assert scaled_size((256, 128), 1.0, 16) == (256, 128)
    assert scaled_size((256, 128), 0.5, 16) == (128, 64)
    assert scaled_size((256, 128), 0.75, 16) == (192, 96)
    assert scaled_size((256, 128), 1.25, 16) == (320, 160)
    assert scaled_size((256, 192), 1.1, 16) == (288, 208)
    assert scaled_size((32, 16), 0.1, 16) == (16, 16)


def test_task_defaults_fill_every_key_and_overrides_go_last(recipe: Path) -> None:
    resolved = load_recipe(
        recipe, "finetune", "smoke", task="reid", overrides=["eval.batch_size=8", "train.epochs=2"]
    )
    assert resolved["eval"]["batch_size"] == 8 and resolved["train"]["epochs"] == 2
    assert resolved["eval"]["flip"] is True  # the recipe's value
    assert resolved["loss"]["margin"] == 0.3  # a key only the defaults file has


def test_unknown_keys_name_the_recipe_or_the_command_line(recipe: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(RECIPE.replace("flip: true", "flipp: true"))
    with pytest.raises(ConfigError, match=r"bad\.yaml: unknown key 'eval\.flipp'"):
        load_recipe(bad, "frozen", "full", task="reid")
    with pytest.raises(ConfigError, match=r"override eval\.batchsize=8: unknown key 'eval\.batchsize'"):
        load_recipe(recipe, "frozen", "full", task="reid", overrides=["eval.batchsize=8"])
    with pytest.raises(ConfigError, match="unknown key"):
        load_recipe(recipe, "finetune", "full", task="reid", overrides=["train.epoch=2"])


def test_the_digest_ignores_how_a_run_is_carried_out_not_what_it_computes(recipe: Path) -> None:
    base = load_recipe(recipe, "finetune", "smoke", task="reid")
    same = load_recipe(
        recipe, "finetune", "smoke", task="reid",
        overrides=["train.checkpoint_every=5", "train.log_every=1", "data.workers=0"],
    )  # fmt: skip
    other = load_recipe(recipe, "finetune", "smoke", task="reid", overrides=["train.lr=0.01"])
    assert config_digest(same) == config_digest(base) != config_digest(other)
