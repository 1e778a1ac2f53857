"""A memory-lean training path for timm's ``Mlp`` (fc1 -> GELU -> fc2) and ``Block``, used in fp32 training.

Autograd normally keeps both fc1's output (for GELU's backward) and GELU's output (for fc2's weight
gradient): two hidden-width tensors per token per block. Fusing GELU into fc2's autograd node keeps only the
first and recomputes GELU (a cheap elementwise op) in the backward pass. In ViT-Tiny and the 512-d CSR
decoder that is about a quarter of all saved activations, which is what keeps the CPU recipe's peak memory
under budget. Weights, their names and the math are unchanged; under autocast (bf16 on CUDA), without
gradients, or for any Mlp with dropout or an inner norm the module's own forward runs.

:func:`make_blocks_lean` goes one step further in a whole ViT block: the outputs of its two LayerNorms
(which feed the qkv and fc1 layers) are recomputed in the backward pass from the norm's input, which the
residual stream keeps anyway, instead of being stored.
"""

from __future__ import annotations

import types

import torch
import torch.nn.functional as F
from torch import nn


class _GeluLinear(torch.autograd.Function):
    """``linear(gelu(h), weight, bias)`` saving ``h`` instead of ``gelu(h)``."""

    @staticmethod
    def forward(ctx, h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, approximate: str):
        ctx.save_for_backward(h, weight)
        ctx.approximate = approximate
        ctx.has_bias = bias is not None
        return F.linear(F.gelu(h, approximate=approximate), weight, bias)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        h, weight = ctx.saved_tensors
        act = F.gelu(h, approximate=ctx.approximate)
        g2 = grad_out.reshape(-1, grad_out.shape[-1])
        grad_weight = g2.t().mm(act.reshape(-1, act.shape[-1]))
        del act
        grad_bias = g2.sum(0) if ctx.has_bias else None
        grad_h = torch.ops.aten.gelu_backward(grad_out.matmul(weight), h, approximate=ctx.approximate)
        return grad_h, grad_weight, grad_bias, None


class _NormLinear(torch.autograd.Function):
    """``linear(layer_norm(x), weight, bias)`` saving ``x`` instead of the normalised ``x``.

    The norm's input is kept anyway (the residual stream), so the normalised copy the linear layer would
    save is recomputed in the backward pass instead (one LayerNorm, cheap next to the matmuls).
    """

    @staticmethod
    def forward(ctx, x, norm_weight, norm_bias, eps: float, weight, bias):
        shape = (x.shape[-1],)
        y, mean, rstd = torch.native_layer_norm(x, shape, norm_weight, norm_bias, eps)
        ctx.save_for_backward(x, norm_weight, norm_bias, mean, rstd, weight)
        ctx.eps, ctx.has_bias = eps, bias is not None
        return F.linear(y, weight, bias)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        x, norm_weight, norm_bias, mean, rstd, weight = ctx.saved_tensors
        shape = [x.shape[-1]]
        y = torch.native_layer_norm(x, shape, norm_weight, norm_bias, ctx.eps)[0]  # bit-identical again
        g2 = grad_out.reshape(-1, grad_out.shape[-1])
        grad_weight = g2.t().mm(y.reshape(-1, y.shape[-1]))
        del y
        grad_bias = g2.sum(0) if ctx.has_bias else None
        grad_x, grad_nw, grad_nb = torch.ops.aten.native_layer_norm_backward(
            grad_out.matmul(weight), x, shape, mean, rstd, norm_weight, norm_bias, [True, True, True]
        )
        return grad_x, grad_nw, grad_nb, None, grad_weight, grad_bias


def _eligible(mlp: nn.Module) -> bool:
    return (
        isinstance(getattr(mlp, "fc1", None), nn.Linear)
        and isinstance(getattr(mlp, "fc2", None), nn.Linear)
        and type(getattr(mlp, "act", None)) is nn.GELU
        and isinstance(getattr(mlp, "norm", nn.Identity()), nn.Identity)
        and getattr(mlp.drop1, "p", 0.0) == 0.0
        and getattr(mlp.drop2, "p", 0.0) == 0.0
    )


def _lean_forward(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
    if not torch.is_grad_enabled() or torch.is_autocast_enabled(x.device.type):
        return type(self).forward(self, x)
    return _GeluLinear.apply(self.fc1(x), self.fc2.weight, self.fc2.bias, self.act.approximate)


def make_mlps_lean(module: nn.Module) -> int:
    """Switch every eligible timm ``Mlp`` inside ``module`` to the lean path; returns how many."""
    from timm.layers import Mlp

    count = 0
    for sub in module.modules():
        if isinstance(sub, Mlp) and _eligible(sub):
            sub.forward = types.MethodType(_lean_forward, sub)
            count += 1
    return count


def _norm_ok(norm: nn.Module) -> bool:  # torch's LayerNorm or timm's subclass of it (the same math)
    return isinstance(norm, nn.LayerNorm) and norm.elementwise_affine and len(norm.normalized_shape) == 1


def _block_eligible(block: nn.Module) -> bool:
    from timm.layers import Attention, Mlp

    attn, mlp = getattr(block, "attn", None), getattr(block, "mlp", None)
    return (
        all(hasattr(block, k) for k in ("norm1", "ls1", "drop_path1", "norm2", "ls2", "drop_path2"))
        and _norm_ok(block.norm1)
        and _norm_ok(block.norm2)
        and type(attn) is Attention
        and getattr(attn, "gate", None) is None
        and isinstance(mlp, Mlp)
        and _eligible(mlp)
    )


def norm_linear(x: torch.Tensor, norm: nn.LayerNorm, linear: nn.Linear) -> torch.Tensor:
    """``linear(norm(x))`` with the normalised ``x`` recomputed in the backward pass, not stored."""
    return _NormLinear.apply(x, norm.weight, norm.bias, norm.eps, linear.weight, linear.bias)


def _lean_block_forward(
    self: nn.Module, x: torch.Tensor, attn_mask: torch.Tensor | None = None, is_causal: bool = False
) -> torch.Tensor:
    """timm ``Block.forward`` (timm 1.0) with each LayerNorm fused into the linear layer it feeds."""
    if not torch.is_grad_enabled() or torch.is_autocast_enabled(x.device.type):
        return type(self).forward(self, x, attn_mask=attn_mask, is_causal=is_causal)
    attn_out = self.attn(x, attn_mask=attn_mask, is_causal=is_causal, pre_norm=self.norm1)
    x = x + self.drop_path1(self.ls1(attn_out))
    mlp = self.mlp
    h = norm_linear(x, self.norm2, mlp.fc1)
    return x + self.drop_path2(
        self.ls2(_GeluLinear.apply(h, mlp.fc2.weight, mlp.fc2.bias, mlp.act.approximate))
    )


def make_blocks_lean(module: nn.Module) -> int:
    """Switch every eligible timm ViT ``Block`` inside ``module`` to the lean path; returns how many.

    On top of the lean MLP, each LayerNorm is recomputed in the backward pass rather than its output stored:
    a sixth of a block's saved activations (fp32 training, with gradients; otherwise timm's forward runs).
    """
    from timm.models.vision_transformer import Block

    from saip_bench.pretrain.engine.attention import make_attention_autocast_aware

    count = 0
    for sub in module.modules():
        if isinstance(sub, Block) and _block_eligible(sub):
            make_attention_autocast_aware(sub.attn)  # its forward takes the block's norm1 (pre_norm)
            sub.forward = types.MethodType(_lean_block_forward, sub)
            count += 1
    return count
