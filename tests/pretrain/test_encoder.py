"""Encoder access over a tiny timm ViT: grids, masking, padding, early stop, last-block q/k/v."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from saip_bench.pretrain.encoder import (
    create_vit,
    forward_tokens,
    grid_of,
    pos_embed_for_grid,
    random_keep_indices,
    tokens_to_map,
)

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def vit():
    torch.manual_seed(0)
    # timm's own ViT (fixed-size patch embed): the encoder must not depend on dynamic_img_size.
    return create_vit(
        "vit_tiny_patch16_224", img_size=(64, 32), patch_size=16, embed_dim=24, depth=4, num_heads=2
    ).eval()


def _count_block_calls(vit):
    calls = []
    handles = [
        b.register_forward_hook(lambda m, i, o, k=k: calls.append(k)) for k, b in enumerate(vit.blocks)
    ]
    return calls, handles


def test_base_grid_matches_timm_forward_features(vit):
    x = torch.randn(2, 3, 64, 32)
    out = forward_tokens(vit, x, inter_index=1)
    torch.testing.assert_close(out.final, vit.forward_features(x))
    assert out.grid == (4, 2)
    assert out.inter.shape == (2, 9, 24)
    assert out.qkv is None


def test_inter_tokens_use_the_given_norm(vit):
    x = torch.randn(2, 3, 64, 32)
    raw = forward_tokens(vit, x, inter_index=1).inter
    norm = nn.LayerNorm(24)
    torch.testing.assert_close(forward_tokens(vit, x, inter_index=1, inter_norm=norm).inter, norm(raw))


def test_pos_embed_resampled_in_2d_and_differentiable(vit):
    prefix, patch = pos_embed_for_grid(vit, (4, 2))
    assert prefix.shape == (1, 1, 24) and patch.shape == (1, 8, 24)
    _, big = pos_embed_for_grid(vit, (6, 4))
    assert big.shape == (1, 24, 24)
    # A pos_embed that varies only along rows must stay constant along each resampled row (2-D, not 1-D).
    with torch.no_grad():
        saved = vit.pos_embed.clone()
        rows = torch.arange(4.0).repeat_interleave(2)
        vit.pos_embed[0, 1:] = rows[:, None].expand(8, 24)
    try:
        _, big = pos_embed_for_grid(vit, (6, 4))
        grid = big[0, :, 0].reshape(6, 4)
        torch.testing.assert_close(grid, grid[:, :1].expand(6, 4))
        assert grid[0, 0] < grid[-1, 0]
    finally:
        with torch.no_grad():
            vit.pos_embed.copy_(saved)
    vit.pos_embed.grad = None
    _, big = pos_embed_for_grid(vit, (5, 3))
    big.sum().backward()
    assert vit.pos_embed.grad is not None and vit.pos_embed.grad.abs().sum() > 0
    vit.pos_embed.grad = None


def test_any_grid_runs_and_grid_of_rejects_non_multiples(vit):
    out = forward_tokens(vit, torch.randn(1, 3, 80, 48), inter_index=None)
    assert out.grid == (5, 3) and out.final.shape == (1, 16, 24) and out.inter is None
    with pytest.raises(ValueError):
        grid_of(vit, (70, 48))


def test_qkv_returned_for_last_block_only(vit):
    x = torch.randn(2, 3, 64, 32)
    captured = {}
    last = vit.blocks[-1].attn.qkv
    hook = last.register_forward_hook(lambda m, i, o: captured.setdefault("qkv", o))
    try:
        out = forward_tokens(vit, x, return_qkv_last=True, inter_index=1)
    finally:
        hook.remove()
    q, k, v = out.qkv
    assert q.shape == k.shape == v.shape == (2, 2, 9, 12)
    expected = captured["qkv"].reshape(2, 9, 3, 2, 12).permute(2, 0, 3, 1, 4)
    torch.testing.assert_close(q, expected[0])
    torch.testing.assert_close(v, expected[2])
    # The hook is removed afterwards, and the output equals the run without q/k/v.
    assert len(last._forward_hooks) == 0
    torch.testing.assert_close(out.final, forward_tokens(vit, x, inter_index=1).final)
    with pytest.raises(ValueError):
        forward_tokens(vit, x, return_qkv_last=True, upto=1, inter_index=1)


def test_upto_stops_early(vit):
    calls, handles = _count_block_calls(vit)
    try:
        out = forward_tokens(vit, torch.randn(1, 3, 64, 32), upto=1, inter_index=1)
        assert calls == [0, 1]
        assert out.final is None and out.inter is not None
        calls.clear()
        forward_tokens(vit, torch.randn(1, 3, 64, 32), inter_index=1)
        assert calls == [0, 1, 2, 3]
    finally:
        for h in handles:
            h.remove()


def test_masking_keeps_only_visible_tokens(vit):
    x = torch.randn(2, 3, 64, 32)
    keep, hidden = random_keep_indices(2, 8, 3, generator=torch.Generator().manual_seed(0))
    assert keep.shape == (2, 3) and hidden.sum(1).tolist() == [5, 5]
    assert not hidden.gather(1, keep).any()
    out = forward_tokens(vit, x, mask_keep_idx=keep, inter_index=1)
    assert out.final.shape == (2, 4, 24)
    # Changing a hidden patch's pixels cannot change anything.
    h = int(hidden[0].nonzero()[0])
    x2 = x.clone()
    r, c = divmod(h, 2)
    x2[0, :, r * 16 : (r + 1) * 16, c * 16 : (c + 1) * 16] += 5
    torch.testing.assert_close(forward_tokens(vit, x2, mask_keep_idx=keep, inter_index=1).final, out.final)


def test_padding_entries_are_ignored(vit):
    x = torch.randn(2, 3, 64, 32)
    keep = torch.tensor([[1, 4, 0], [2, 5, 7]])
    valid = torch.tensor([[True, True, False], [True, True, True]])
    padded = forward_tokens(vit, x, mask_keep_idx=keep, keep_valid=valid, inter_index=1)
    alone = forward_tokens(vit, x[:1], mask_keep_idx=keep[:1, :2], inter_index=1)
    torch.testing.assert_close(padded.final[:1, :3], alone.final)
    full = forward_tokens(vit, x[1:], mask_keep_idx=keep[1:], inter_index=1)
    torch.testing.assert_close(padded.final[1:], full.final)


def test_tokens_to_map(vit):
    tokens = torch.arange(2 * 9 * 3.0).reshape(2, 9, 3)
    m = tokens_to_map(tokens, (4, 2))
    assert m.shape == (2, 3, 4, 2)
    torch.testing.assert_close(m[1, :, 2, 1], tokens[1, 1 + 2 * 2 + 1])


def test_saip_entrypoint_equals_timm_dynamic_forward_at_every_grid():
    import timm

    import saip_bench  # noqa: F401

    if not timm.is_model("saip_vit_tiny_patch16"):
        pytest.skip("saip_vit_tiny_patch16 not registered")
    torch.manual_seed(0)
    vit = create_vit(depth=2, embed_dim=24, num_heads=2).eval()
    assert vit.dynamic_img_size
    with torch.no_grad():
        vit.pos_embed.normal_()
    for hw in [(256, 128), (320, 160), (128, 64), (96, 48), (224, 224)]:
        x = torch.randn(1, 3, *hw)
        out = forward_tokens(vit, x, inter_index=None)
        torch.testing.assert_close(out.final, vit.forward_features(x), atol=1e-5, rtol=1e-5)
