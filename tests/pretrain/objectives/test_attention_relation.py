"""Attention-relation KL: zero for identical inputs, positive otherwise, gradient to the student only."""

from __future__ import annotations

import math

import pytest
import torch

from saip_bench.pretrain.objectives import attention_relation_loss, relation_kl


def _qkv(seed, requires_grad=False):
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(2, 3, 5, 4, generator=g, requires_grad=requires_grad) for _ in range(3))


def test_zero_for_identical_inputs():
    s = _qkv(0)
    assert attention_relation_loss(s, tuple(t.clone() for t in s)).item() == pytest.approx(0.0, abs=1e-7)


def test_positive_and_flows_to_student_only():
    s, t = _qkv(0, requires_grad=True), _qkv(1, requires_grad=True)
    loss = attention_relation_loss(s, t)
    assert loss.item() > 0
    loss.backward()
    assert all(x.grad is not None for x in s)
    assert all(x.grad is None for x in t)


def test_matches_written_out_kl():
    s, t = _qkv(2), _qkv(3)
    scale = 1 / math.sqrt(4)
    p_s = torch.softmax(s[0] @ s[1].transpose(-2, -1) * scale, -1)
    p_t = torch.softmax(t[0] @ t[1].transpose(-2, -1) * scale, -1)
    expected = (p_t * (p_t.log() - p_s.log())).sum(-1).mean()
    torch.testing.assert_close(relation_kl(s[0], s[1], t[0], t[1]), expected)
