"""Shared fixtures of the parsing tests: requests whose recipes are resolved as ``saip evaluate`` does."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from saip_bench.evaluate.adapter import EvalRequest
from saip_bench.evaluate.protocols import load_recipe

RequestFactory = Callable[..., EvalRequest]


def resolve(tmp_path: Path, recipe: dict, protocol: str) -> dict:
    """``recipe`` (its ``train`` under the protocol) written as a recipe file and resolved as dispatch does:
    over ``configs/evaluate/defaults/parsing.yaml``, unknown keys refused."""
    body = {k: v for k, v in recipe.items() if k != "train"}
    body["protocols"] = {protocol: {"train": recipe["train"]}}
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "recipe.yaml"
    OmegaConf.save(OmegaConf.create(body), path)
    return load_recipe(path, protocol, "full", task="parsing")


@pytest.fixture
def parsing_recipe() -> Callable[[Path, dict, str], dict]:
    """:func:`resolve`: a hand-written recipe resolved over the parsing defaults file."""
    return resolve


@pytest.fixture
def parsing_request() -> RequestFactory:
    """``parsing_request(root, run_dir, protocol, recipe, size)``: an LIP request over the resolved recipe."""

    def make(root: Path, run_dir: Path, protocol: str, recipe: dict, size: tuple[int, int]) -> EvalRequest:
        resolved = resolve(run_dir / "recipe", recipe, protocol)
        return EvalRequest(
            "parsing", "lip", root, protocol, "smoke", resolved, size, run_dir, primary_metric="mIoU"
        )

    return make
