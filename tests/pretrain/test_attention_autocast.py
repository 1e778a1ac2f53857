"""Under CPU autocast a long attention runs in the fp32 kernel, a short one written out with an fp32 softmax
(both faster than the bf16 kernel on the CPU), and hands back the autocast dtype; without autocast it is
torch's own call, untouched."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from timm.layers import Attention

from saip_bench.pretrain.engine.attention import MATH_MAX_SCORES, make_attention_autocast_aware, sdpa


def test_long_attention_runs_in_the_fp32_kernel_under_cpu_autocast():
    torch.manual_seed(0)
    q, k, v = (torch.randn(1, 2, 170, 8).bfloat16() for _ in range(3))  # 170 x 170 > MATH_MAX_SCORES
    assert MATH_MAX_SCORES < 170 * 170
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = sdpa(q, k, v)
    assert out.dtype == torch.bfloat16
    expected = F.scaled_dot_product_attention(q.float(), k.float(), v.float()).bfloat16()
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    x = torch.randn(2, 3, 7, 8)  # no autocast: torch's own call
    torch.testing.assert_close(sdpa(x, x, x), F.scaled_dot_product_attention(x, x, x), rtol=0, atol=0)


@pytest.mark.parametrize("masked", [False, True])
def test_short_attention_is_written_out_with_an_fp32_softmax(masked):
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 3, 7, 8) for _ in range(3))
    mask = torch.tensor([True] * 5 + [False] * 2)[None, None, None, :].expand(2, 1, 1, 7) if masked else None
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = sdpa(q.bfloat16(), k.bfloat16(), v.bfloat16(), attn_mask=mask)
    assert out.dtype == torch.bfloat16
    reference = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # fp32 throughout
    torch.testing.assert_close(out.float(), reference, rtol=0.02, atol=0.02)  # bf16 inputs and products


def test_patched_timm_attention_equals_timm_outside_autocast_and_fp32_attention_inside():
    torch.manual_seed(0)
    attn = Attention(32, 4, qkv_bias=True).eval()
    x = torch.randn(2, 5, 32)
    plain = attn(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        timm_bf16 = attn(x)
    assert make_attention_autocast_aware(torch.nn.Sequential(attn)) == 1
    assert make_attention_autocast_aware(attn) == 1  # idempotent
    torch.testing.assert_close(attn(x), plain, rtol=0, atol=0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ours = attn(x)
    assert ours.dtype == timm_bf16.dtype == torch.bfloat16
    torch.testing.assert_close(ours.float(), plain, rtol=0.05, atol=0.02)  # bf16 linear layers around it
