"""The lean ViT block (LayerNorms recomputed in backward, GELU too) equals timm's Block in value and gradient,
saves less for the backward pass, and steps aside without gradients and under autocast."""

from __future__ import annotations

import copy

import pytest
import torch
from timm.models.vision_transformer import Block

from saip_bench.pretrain.engine.lean_mlp import make_blocks_lean

torch.set_num_threads(1)


def _saved_bytes(fn) -> int:
    sizes: dict[int, int] = {}

    def pack(t):
        sizes[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(sizes.values())


@pytest.mark.parametrize("masked", [False, True])
def test_lean_block_equals_timm_block_in_value_and_gradient(masked):
    torch.manual_seed(0)
    timm_block = Block(32, 4, qkv_bias=True).train()
    lean = copy.deepcopy(timm_block)
    assert make_blocks_lean(torch.nn.Sequential(lean)) == 1
    assert make_blocks_lean(torch.nn.Sequential(Block(32, 4, proj_drop=0.1))) == 0  # dropout: left alone
    mask = torch.tensor([True] * 5 + [False] * 2)[None, None, None, :].expand(3, 1, 1, 7) if masked else None
    x = torch.randn(3, 7, 32)
    w = torch.randn(3, 7, 32)
    results = []
    for block in (timm_block, lean):
        xi = x.clone().requires_grad_(True)
        out = block(xi, attn_mask=mask)
        (out * w).sum().backward()
        results.append([out, xi.grad] + [p.grad for p in block.parameters()])
    for got, want in zip(results[1], results[0], strict=True):
        torch.testing.assert_close(got, want)


def test_lean_block_saves_less_and_steps_aside_without_gradients():
    torch.manual_seed(0)
    timm_block = Block(64, 4, qkv_bias=True).train()
    lean = copy.deepcopy(timm_block)
    make_blocks_lean(lean)
    x = torch.randn(2, 50, 64, requires_grad=True)
    full, lean_bytes = _saved_bytes(lambda: timm_block(x)), _saved_bytes(lambda: lean(x))
    # Two 64-wide tensors of the 12 a block stores per token (x2, qkv x3, attention out, 4x hidden x2...).
    assert full - lean_bytes >= 2 * x.numel() * 4
    with torch.no_grad():
        torch.testing.assert_close(lean(x), timm_block(x))
    with torch.autocast("cpu", dtype=torch.bfloat16):  # timm's own block forward (the attention in fp32)
        torch.testing.assert_close(lean(x), type(lean).forward(lean, x))
