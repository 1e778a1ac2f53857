"""A ViT-Tiny whose every tensor is random, so a load that silently skips a tensor cannot pass."""

from __future__ import annotations

import pytest
import timm
import torch

import saip_bench  # noqa: F401  (registers the entrypoints)


def randomised(model: torch.nn.Module, seed: int = 7) -> torch.nn.Module:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for tensor in model.state_dict().values():
            if tensor.is_floating_point():
                tensor.copy_(torch.randn(tensor.shape, generator=gen) * 0.02)
    return model.eval()


@pytest.fixture(scope="module")
def vit() -> torch.nn.Module:
    """A 256x128 saip_vit_tiny_patch16 with random values in every tensor."""
    return randomised(timm.create_model("saip_vit_tiny_patch16", img_size=(256, 128)))


def _assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


@pytest.fixture
def randomise():  # noqa: ANN201
    """``randomise(model, seed=...)``: fill every float tensor of ``model`` with seeded noise."""
    return randomised


@pytest.fixture
def same_weights():  # noqa: ANN201
    """``same_weights(a, b)``: assert tensor-equal state dicts (a fixture, as conftest is not importable)."""
    return _assert_same_weights
