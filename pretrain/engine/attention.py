"""Scaled-dot-product attention that stays fast under CPU bf16 autocast.

On the CPU, the bf16 flash-attention kernel's backward pass is two to three times slower than the fp32
kernel's at the pretraining shapes (ViT-Tiny at 19-197 tokens, the 512-d decoders at 202), so under CPU
autocast a long attention runs in the fp32 kernel on fp32 copies of q, k, v and hands back the autocast
dtype, and a short one (up to 160 x 160 scores per head: every ViT-Tiny view but the composite) as
``softmax(q k^T / sqrt(d)) v`` written out, two bf16 matmuls around an fp32 softmax, which is faster still
there (forward + backward at 2 threads: 129 tokens 11.5 -> 6.8 ms, 33 tokens 5.2 -> 2.0 ms; at 202 tokens
it is slower, 30 -> 54 ms). Everywhere else (no autocast, CUDA) it is ``F.scaled_dot_product_attention``
untouched. :func:`make_attention_autocast_aware`
routes timm's ``Attention`` modules through it; weights, their names and the fp32 math are unchanged.
"""

from __future__ import annotations

import types

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["MATH_MAX_SCORES", "make_attention_autocast_aware", "sdpa"]

#: Under CPU autocast, attention with at most this many scores per head (queries x keys) runs as two bf16
#: matmuls around an fp32 softmax, the larger ones through the fp32 kernel (see the module docstring).
MATH_MAX_SCORES = 160 * 160


def sdpa(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    attn_mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
) -> torch.Tensor:
    """``F.scaled_dot_product_attention``; under CPU autocast as the module docstring says."""
    if q.device.type != "cpu" or not torch.is_autocast_enabled("cpu"):
        return F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, dropout_p=dropout_p, is_causal=is_causal
        )
    if q.shape[-2] * k.shape[-2] <= MATH_MAX_SCORES and not dropout_p and not is_causal:
        scores = (q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)  # autocast: a bf16 matmul
        if attn_mask is not None:
            bool_mask = attn_mask.dtype == torch.bool
            scores = scores.masked_fill(~attn_mask, float("-inf")) if bool_mask else scores + attn_mask
        return torch.softmax(scores, dim=-1, dtype=torch.float32).to(v.dtype) @ v
    dtype = torch.get_autocast_dtype("cpu")
    with torch.autocast("cpu", enabled=False):
        out = F.scaled_dot_product_attention(
            q.float(), k.float(), v.float(), attn_mask=attn_mask, dropout_p=dropout_p, is_causal=is_causal
        )
    return out.to(dtype)


def _eligible(attn: nn.Module) -> bool:
    from timm.layers import Attention

    return type(attn) is Attention and bool(getattr(attn, "fused_attn", True))


def _attention_forward(
    self: nn.Module,
    x: torch.Tensor,
    attn_mask: torch.Tensor | None = None,
    is_causal: bool = False,
    pre_norm: nn.LayerNorm | None = None,
) -> torch.Tensor:
    """timm ``Attention.forward`` (timm 1.0) with the attention call through :func:`sdpa`.

    ``pre_norm``: ``x`` is the block's input and this LayerNorm, which timm's block applies before the
    attention, is fused into the qkv layer (the lean block of :mod:`saip_bench.pretrain.engine.lean_mlp`).
    """
    autocast = x.device.type == "cpu" and torch.is_autocast_enabled("cpu")
    if pre_norm is None and not autocast:
        return type(self).forward(self, x, attn_mask=attn_mask, is_causal=is_causal)
    b, n, _ = x.shape
    if pre_norm is not None:
        from saip_bench.pretrain.engine.lean_mlp import norm_linear

        qkv = norm_linear(x, pre_norm, self.qkv)
        gate = None if getattr(self, "gate", None) is None else self.gate(pre_norm(x)).sigmoid()
    else:
        qkv = self.qkv(x)
        gate = None if getattr(self, "gate", None) is None else self.gate(x).sigmoid()
    q, k, v = qkv.reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
    q, k = self.q_norm(q), self.k_norm(k)
    drop = self.attn_drop.p if self.training else 0.0
    out = sdpa(q, k, v, attn_mask=attn_mask, dropout_p=drop, is_causal=is_causal)
    out = self.norm(out.transpose(1, 2).reshape(b, n, self.attn_dim))
    if gate is not None:
        out = out * gate
    return self.proj_drop(self.proj(out))


def make_attention_autocast_aware(module: nn.Module) -> int:
    """Route every fused timm ``Attention`` inside ``module`` through :func:`sdpa`; returns how many.

    Idempotent; the patched forward also takes the lean block's ``pre_norm``.
    """
    count = 0
    for sub in module.modules():
        if _eligible(sub):
            if getattr(sub.forward, "__func__", None) is not _attention_forward:
                sub.forward = types.MethodType(_attention_forward, sub)
            count += 1
    return count
