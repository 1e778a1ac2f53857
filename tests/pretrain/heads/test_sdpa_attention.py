"""Every attention block of the pretraining model (encoder, CSR decoder, both parts of the CSS decoder) runs
``torch.nn.functional.scaled_dot_product_attention``, and that equals the written-out
softmax(q k^T / sqrt d) v within fp32 rounding."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from PIL import Image
from timm.layers import Attention
from torch.overrides import TorchFunctionMode

from saip_bench.pretrain.heads import CSRDecoder, CSSDecoder
from saip_bench.pretrain.heads.css_decoder import CrossAttentionBlock
from saip_bench.pretrain.meta_arch import ArchSettings, MetaArch
from saip_bench.pretrain.methods import resolve
from saip_bench.pretrain.views import MultiCropViews, SaipViews, collate_views
from tests.pretrain.test_meta_arch import TINY


def test_cross_attention_equals_the_explicit_formula():
    torch.manual_seed(0)
    block = CrossAttentionBlock(32, 4).eval()
    x, memory = torch.randn(2, 3, 32), torch.randn(2, 7, 32)
    h, d = 4, 8
    q = block.q(block.norm_q(x)).view(2, 3, h, d).transpose(1, 2)
    k, v = block.kv(block.norm_kv(memory)).view(2, 7, 2, h, d).permute(2, 0, 3, 1, 4)
    attn = (q @ k.transpose(-2, -1) / math.sqrt(d)).softmax(dim=-1)
    y = x + block.proj((attn @ v).transpose(1, 2).reshape(2, 3, 32))
    y = y + block.mlp(block.norm2(y))
    torch.testing.assert_close(block(x, memory), y, rtol=1e-5, atol=1e-6)


def _unfused(module: torch.nn.Module) -> torch.nn.Module:
    """A copy whose timm attention blocks write the softmax out (timm's own explicit path)."""
    other = copy.deepcopy(module)
    for m in other.modules():
        if isinstance(m, Attention):
            m.fused_attn = False
    return other


@pytest.mark.parametrize("padding", [False, True])
def test_csr_decoder_fused_attention_equals_the_explicit_one(padding):
    torch.manual_seed(0)
    dec = CSRDecoder(16, patch_size=4, decoder_dim=32, depth=2, num_heads=4, base_grid=(4, 2)).eval()
    keep_idx = torch.tensor([[0, 3, 5], [1, 2, 7]])
    valid = torch.tensor([[True, True, False], [True, True, True]]) if padding else None
    args = (torch.randn(2, 4, 16), keep_idx, (4, 2), torch.randn(2, 16))
    torch.testing.assert_close(
        dec(*args, keep_valid=valid), _unfused(dec)(*args, keep_valid=valid), rtol=1e-5, atol=1e-5
    )


def test_css_decoder_fused_attention_equals_the_explicit_one():
    torch.manual_seed(0)
    dec = CSSDecoder(24, hidden_dim=32, num_heads=4, self_attn_depth=2, mask_head_depth=2).eval()
    queries, memory = [torch.randn(2, 5, 24), torch.randn(2, 9, 24)], torch.randn(2, 24, 4, 4)
    torch.testing.assert_close(dec(queries, memory), _unfused(dec)(queries, memory), rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def batch() -> dict[str, torch.Tensor]:
    from saip_bench.pretrain.composite import CompositeMaker

    rng = np.random.default_rng(0)
    imgs = [Image.fromarray(rng.integers(0, 255, (96, 48, 3), dtype=np.uint8)) for _ in range(2)]
    views = SaipViews(
        MultiCropViews(global_size=(64, 32), local_size=(32, 16), local_crops_number=4),
        CompositeMaker(lambda r: imgs[int(r.integers(2))], size=(64, 64), person_size=(32, 16)),
    )
    return collate_views([views(im, np.random.default_rng(i)) for i, im in enumerate(imgs)])


class _AttentionCalls(TorchFunctionMode):
    """Counts scaled_dot_product_attention calls and softmaxes over >= 3-D tensors (attention maps: the
    written-out attention; the CSM softmax over prototypes is 2-D, the relation term a log_softmax)."""

    def __init__(self) -> None:
        super().__init__()
        self.sdpa = self.explicit = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name == "scaled_dot_product_attention":
            self.sdpa += 1
        elif name == "softmax" and args and getattr(args[0], "ndim", 0) >= 3:
            self.explicit += 1
        return func(*args, **(kwargs or {}))


def test_a_saip_step_runs_every_attention_through_sdpa(batch):
    torch.manual_seed(0)
    model = MetaArch(resolve("saip", None, {}), ArchSettings(**TINY)).train()
    assert not any(isinstance(m, torch.nn.MultiheadAttention) for m in model.modules())
    attention = [m for m in model.modules() if isinstance(m, (Attention, CrossAttentionBlock))]
    assert any(isinstance(m, CrossAttentionBlock) for m in attention)
    assert all(m.fused_attn for m in attention if isinstance(m, Attention))
    module_calls = []
    hooks = [m.register_forward_pre_hook(lambda *_: module_calls.append(1)) for m in attention]
    try:
        with _AttentionCalls() as calls:
            model(batch, 0)["loss"].backward()
    finally:
        for h in hooks:
            h.remove()
    assert calls.explicit == 0
    # Student and teacher encoders, the CSR decoder, the CSS decoder's self- and cross-attention; the
    # encoder may also run a block's attention itself (a subset of its queries), through SDPA as well.
    assert calls.sdpa >= len(module_calls) > 10
