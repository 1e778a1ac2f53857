"""CSS decoder: find a query person in the teacher's multi-person map with a dynamic mask kernel.

The query (a student view's intermediate tokens) passes two self-attention blocks; its CLS token
cross-attends to the teacher's composite tokens and becomes a kernel (the weights of a 1x1 conv) applied
to a small conv head over the teacher's map: one logit per cell, "is this the query person".
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import torch
import torch.nn as nn
from timm.layers import Mlp
from timm.models.vision_transformer import Block

from saip_bench.pretrain.engine.attention import sdpa

__all__ = ["CSSDecoder", "CrossAttentionBlock"]

_norm = partial(nn.LayerNorm, eps=1e-6)


class CrossAttentionBlock(nn.Module):
    """Pre-norm cross-attention (queries attend to a memory) followed by an MLP, both residual."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.norm_q = _norm(dim)
        self.norm_kv = _norm(dim)
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = _norm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        """``x`` (B, Q, dim) attends to ``memory`` (B, M, dim)."""
        b, nq, d = x.shape
        h = self.num_heads
        q = self.q(self.norm_q(x)).reshape(b, nq, h, d // h).transpose(1, 2)
        k, v = self.kv(self.norm_kv(memory)).reshape(b, -1, 2, h, d // h).permute(2, 0, 3, 1, 4)
        out = sdpa(q, k, v).transpose(1, 2).reshape(b, nq, d)
        x = x + self.proj(out)
        return x + self.mlp(self.norm2(x))


class CSSDecoder(nn.Module):
    """Dynamic-kernel mask search of query persons in a multi-person token map.

    Args:
        embed_dim: Width of the encoder tokens (queries and memory).
        hidden_dim: Decoder width (kernel and mask-feature channels).
        num_heads: Heads of the attention blocks (the public code passed its decoders' 16 through).
        self_attn_depth: Self-attention blocks over each query's tokens.
        mask_head_depth: Conv layers of the mask head (a 1x1 then 3x3 convs, GELU after each).
        mlp_ratio: MLP expansion of the attention blocks.
    """

    def __init__(
        self,
        embed_dim: int,
        *,
        hidden_dim: int = 512,
        num_heads: int = 16,
        self_attn_depth: int = 2,
        mask_head_depth: int = 4,
        mlp_ratio: float = 4.0,
    ) -> None:
        super().__init__()
        if mask_head_depth < 1:
            raise ValueError(f"mask_head_depth must be >= 1, got {mask_head_depth}")
        self.q_embed = nn.Linear(embed_dim, hidden_dim)
        self.self_blocks = nn.ModuleList(
            [
                Block(hidden_dim, num_heads, mlp_ratio, qkv_bias=True, norm_layer=_norm)
                for _ in range(self_attn_depth)
            ]
        )
        self.kv_embed = nn.Linear(embed_dim, hidden_dim)
        self.kv_norm = _norm(hidden_dim)
        self.cross_block = CrossAttentionBlock(hidden_dim, num_heads, mlp_ratio)
        self.q_norm = _norm(hidden_dim)
        self.kernel = nn.Linear(hidden_dim, hidden_dim)
        convs: list[nn.Module] = [nn.Conv2d(embed_dim, hidden_dim, 1), nn.GELU()]
        for _ in range(mask_head_depth - 1):
            convs += [nn.Conv2d(hidden_dim, hidden_dim, 3, padding=1), nn.GELU()]
        self.mask_head = nn.Sequential(*convs)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def query_token(self, tokens: torch.Tensor) -> torch.Tensor:
        """``(B, 1+N, embed_dim)`` query tokens (CLS first) -> ``(B, hidden_dim)`` query CLS."""
        from saip_bench.pretrain.encoder import block_rows

        x = self.q_embed(tokens)
        for block in self.self_blocks[:-1]:
            x = block(x)
        # Only the CLS output is read: the last block computes its attention and MLP for that row alone.
        return block_rows(self.self_blocks[-1], x, 1)[0][:, 0] if len(self.self_blocks) else x[:, 0]

    def forward(self, queries: torch.Tensor | Sequence[torch.Tensor], memory: torch.Tensor) -> torch.Tensor:
        """Mask logits of each query person over the memory map.

        Args:
            queries: One ``(B, 1+N_i, embed_dim)`` token tensor per query (sizes may differ), or one tensor.
            memory: ``(B, embed_dim, H, W)`` the teacher's intermediate token map of the composite.

        Returns:
            ``(B, Q, H, W)`` logits, channel q for query q. The mask features of the memory are computed
            once for all queries.
        """
        if isinstance(queries, torch.Tensor):
            queries = [queries]
        b, _, h, w = memory.shape
        q = torch.stack([self.query_token(t) for t in queries], dim=1)  # (B, Q, hidden)
        mem_tokens = self.kv_norm(self.kv_embed(memory.flatten(2).transpose(1, 2)))
        kernels = self.kernel(self.q_norm(self.cross_block(q, mem_tokens)))  # (B, Q, hidden)
        feats = self.mask_head(memory)  # (B, hidden, H, W)
        return torch.einsum("bqc,bchw->bqhw", kernels, feats)
