"""CSS decoder: one logit map per query at the memory's resolution; mask features computed once."""

from __future__ import annotations

import torch

from saip_bench.pretrain.heads import CSSDecoder


def _decoder():
    torch.manual_seed(0)
    return CSSDecoder(24, hidden_dim=32, num_heads=4, self_attn_depth=2, mask_head_depth=3).eval()


def test_logit_shapes_for_queries_of_different_lengths():
    dec = _decoder()
    memory = torch.randn(2, 24, 14, 14)
    out = dec([torch.randn(2, 9, 24), torch.randn(2, 13, 24)], memory)
    assert out.shape == (2, 2, 14, 14)
    assert dec(torch.randn(2, 9, 24), memory).shape == (2, 1, 14, 14)


def test_each_query_is_independent_and_mask_head_runs_once():
    dec = _decoder()
    memory = torch.randn(1, 24, 6, 6)
    q1, q2 = torch.randn(1, 5, 24), torch.randn(1, 7, 24)
    calls = []
    hook = dec.mask_head.register_forward_hook(lambda m, i, o: calls.append(1))
    try:
        both = dec([q1, q2], memory)
    finally:
        hook.remove()
    assert len(calls) == 1
    torch.testing.assert_close(both[:, :1], dec(q1, memory))
    torch.testing.assert_close(both[:, 1:], dec(q2, memory))


def test_gradients_reach_query_and_memory():
    dec = _decoder()
    q = torch.randn(1, 5, 24, requires_grad=True)
    memory = torch.randn(1, 24, 4, 4, requires_grad=True)
    dec(q, memory).sum().backward()
    assert q.grad.abs().sum() > 0 and memory.grad.abs().sum() > 0
