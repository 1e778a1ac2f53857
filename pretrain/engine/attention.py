"""Scaled-dot-product attention that stays fast under CPU bf16 autocast.

On the CPU, the bf16 flash-attention kernel's backward pass is two to three times slower than the fp32
kernel's at the pretraining shapes (ViT-Tiny at 33-202 tokens, the 512-d decoders), so under CPU autocast
the attention itself runs in fp32 on fp32 copies of q, k, v (also the more accurate choice: the bf16
kernel keeps its running softmax in fp32 anyway) and hands back the autocast dtype. Everywhere else (no
autocast, CUDA) it is ``F.scaled_dot_product_attention`` untouched. :func:`make_attention_autocast_aware`
routes timm's ``Attention`` modules through it; weights, their names and the fp32 math are unchanged.
"""

from __future__ import annotations

import types

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["make_attention_autocast_aware", "sdpa"]


def sdpa(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    attn_mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
) -> torch.Tensor:
    """``F.scaled_dot_product_attention``; in fp32 when CPU autocast is on (see the module docstring)."""
    if q.device.type != "cpu" or not torch.is_autocast_enabled("cpu"):
        return F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, dropout_p=dropout_p, is_causal=is_causal
        )
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
    self: nn.Module, x: torch.Tensor, attn_mask: torch.Tensor | None = None, is_causal: bool = False
) -> torch.Tensor:
    """timm ``Attention.forward`` (timm 1.0) with the attention call through :func:`sdpa`."""
    if x.device.type != "cpu" or not torch.is_autocast_enabled("cpu"):
        return type(self).forward(self, x, attn_mask=attn_mask, is_causal=is_causal)
    b, n, _ = x.shape
    gate = self.gate(x).sigmoid() if getattr(self, "gate", None) is not None else None
    q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
    q, k = self.q_norm(q), self.k_norm(k)
    drop = self.attn_drop.p if self.training else 0.0
    out = sdpa(q, k, v, attn_mask=attn_mask, dropout_p=drop, is_causal=is_causal)
    out = self.norm(out.transpose(1, 2).reshape(b, n, self.attn_dim))
    if gate is not None:
        out = out * gate
    return self.proj_drop(self.proj(out))


def make_attention_autocast_aware(module: nn.Module) -> int:
    """Route every fused timm ``Attention`` inside ``module`` through :func:`sdpa`; returns how many."""
    count = 0
    for sub in module.modules():
        if _eligible(sub):
            sub.forward = types.MethodType(_attention_forward, sub)
            count += 1
    return count
