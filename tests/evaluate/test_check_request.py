"""``check_request``: the one refusal every adapter makes before reading data."""

from __future__ import annotations

from pathlib import Path

import pytest

from saip_bench.errors import ConfigError
from saip_bench.evaluate.adapter import EvalRequest, check_request


class _Adapter:
    task = "pose"
    protocols = ("finetune", "linear")


def _request(protocol: str, recipe: dict) -> EvalRequest:
    return EvalRequest(
        task="pose", dataset="coco_keypoints", data_dir=Path("."), protocol=protocol, budget="smoke",
        recipe=recipe, img_size=(64, 48), run_dir=Path("."),
    )  # fmt: skip


def test_unsupported_protocol_names_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match="the pose task supports protocols finetune, linear, not 'frozen'"):
        check_request(_Adapter(), _request("frozen", {"train": {}}))


def test_a_training_protocol_needs_a_train_section() -> None:
    check_request(_Adapter(), _request("linear", {}))  # not asked to train: fine
    check_request(_Adapter(), _request("linear", {"train": {"epochs": 1}}), needs_train=True)
    with pytest.raises(ConfigError, match="linear protocol needs a 'train' section"):
        check_request(_Adapter(), _request("linear", {}), needs_train=True)
