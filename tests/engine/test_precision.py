"""Precision names resolve per device, bad ones are one ConfigError; CPU bf16 warns where it is emulated."""

from __future__ import annotations

import logging

import pytest
import torch

from saip_bench.engine import precision as P
from saip_bench.errors import ConfigError


def test_auto_is_fp32_on_cpu_and_bf16_on_cuda():
    assert P.resolve_precision("auto", "cpu") == "fp32"
    assert P.resolve_precision("auto", torch.device("cuda")) == "bf16"  # no GPU needed to resolve a name


@pytest.mark.parametrize(
    ("name", "device", "words"), [("fp8", "cpu", "expected auto"), ("fp16", "cpu", "CUDA")]
)
def test_bad_names_are_one_config_error(name, device, words):
    with pytest.raises(ConfigError, match=words):
        P.resolve_precision(name, device, key="train.precision")


@pytest.mark.parametrize("has_units", [True, False])
def test_cpu_bf16_warns_only_without_bf16_units(monkeypatch, caplog, has_units):
    monkeypatch.setattr(P, "cpu_has_bf16", lambda: has_units)
    with caplog.at_level(logging.WARNING, logger=P.__name__):
        assert P.resolve_precision("bf16", "cpu") == "bf16"
        assert P.resolve_precision("bf16", torch.device("cuda")) == "bf16"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == (0 if has_units else 1)
    if not has_units:
        assert "train.precision=bf16" in warnings[0] and "emulated" in warnings[0]


def test_cpu_has_bf16_is_a_bool():
    assert isinstance(P.cpu_has_bf16(), bool)
