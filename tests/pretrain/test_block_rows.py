"""Rows nobody reads are not computed: a block run for its first rows equals the whole block's first rows,
in value and in gradient, and the meta-architecture's CLS-only paths equal the full ones."""

from __future__ import annotations

import pytest
import torch
from timm.models.vision_transformer import Block

from saip_bench.pretrain.encoder import block_rows, create_vit, forward_tokens
from saip_bench.pretrain.heads import CSSDecoder

torch.set_num_threads(1)


def _grads(module: torch.nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    return [x.grad.clone()] + [p.grad.clone() for p in module.parameters() if p.grad is not None]


@pytest.mark.parametrize("masked", [False, True])
def test_first_rows_equal_the_whole_block_in_value_and_gradient(masked):
    torch.manual_seed(0)
    block = Block(32, 4, qkv_bias=True).train()  # no dropout or drop-path: training mode is deterministic
    x = torch.randn(3, 7, 32, requires_grad=True)
    mask = torch.tensor([True] * 5 + [False] * 2)[None, None, None, :].expand(3, 1, 1, 7) if masked else None
    w = torch.randn(3, 2, 32)

    full = block(x, attn_mask=mask)[:, :2]
    (full * w).sum().backward()
    expected = _grads(block, x)
    block.zero_grad(), x.grad.zero_()

    rows, qkv = block_rows(block, x, 2, attn_mask=mask)
    assert qkv is None and rows.shape == (3, 2, 32)
    torch.testing.assert_close(rows, full)
    (rows * w).sum().backward()
    for got, want in zip(_grads(block, x), expected, strict=True):
        torch.testing.assert_close(got, want)


def test_qkv_of_every_token_come_with_the_rows():
    torch.manual_seed(0)
    block = Block(32, 4, qkv_bias=True).eval()
    x = torch.randn(2, 5, 32)
    captured = {}
    hook = block.attn.qkv.register_forward_hook(lambda m, i, o: captured.setdefault("qkv", o))
    full = block(x)
    hook.remove()
    rows, (q, k, v) = block_rows(block, x, 1, return_qkv=True)
    torch.testing.assert_close(rows, full[:, :1])
    expected = captured["qkv"].reshape(2, 5, 3, 4, 8).permute(2, 0, 3, 1, 4)
    for got, want in zip((q, k, v), expected, strict=True):
        assert got.shape == (2, 4, 5, 8)
        torch.testing.assert_close(got, want)
    every, _ = block_rows(block, x)  # rows=None: the whole block
    torch.testing.assert_close(every, full)


def test_final_cls_only_equals_the_full_final_tokens():
    torch.manual_seed(0)
    vit = create_vit(
        "vit_tiny_patch16_224", img_size=(64, 32), patch_size=16, embed_dim=24, depth=3, num_heads=2
    )
    x = torch.randn(2, 3, 64, 32)
    full = forward_tokens(vit.eval(), x, return_qkv_last=True, inter_index=1)
    cls = forward_tokens(vit, x, return_qkv_last=True, inter_index=1, final_rows=1)
    assert cls.final.shape == (2, 1, 24)
    torch.testing.assert_close(cls.final, full.final[:, :1])
    torch.testing.assert_close(cls.inter, full.inter)
    for got, want in zip(cls.qkv, full.qkv, strict=True):
        torch.testing.assert_close(got, want)


def test_css_query_token_equals_the_full_last_block():
    torch.manual_seed(0)
    dec = CSSDecoder(24, hidden_dim=32, num_heads=4, self_attn_depth=2, mask_head_depth=2).eval()
    tokens = torch.randn(2, 9, 24)
    x = dec.q_embed(tokens)
    for block in dec.self_blocks:
        x = block(x)
    torch.testing.assert_close(dec.query_token(tokens), x[:, 0])
