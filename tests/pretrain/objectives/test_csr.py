"""CSR: base mask carried to the enlarged grid, exact keep set, loss on hidden patches only."""

from __future__ import annotations

import torch

from saip_bench.pretrain.objectives import (
    carry_mask,
    csr_loss,
    draw_base_mask,
    keep_from_mask,
    masked_mse,
    patch_targets,
    patchify,
    unpatchify,
)


def test_base_mask_ratio_and_seeding():
    a = draw_base_mask(4, (16, 8), 0.75, generator=torch.Generator().manual_seed(0))
    b = draw_base_mask(4, (16, 8), 0.75, generator=torch.Generator().manual_seed(0))
    assert a.shape == (4, 16, 8) and a.dtype == torch.bool
    assert a.flatten(1).sum(1).tolist() == [96] * 4
    assert torch.equal(a, b) and not torch.equal(a[0], a[1])


def test_enlarged_mask_is_nearest_upsampling_of_base_mask():
    base = draw_base_mask(3, (16, 8), 0.75, generator=torch.Generator().manual_seed(1))
    big = carry_mask(base, (20, 10))
    assert big.shape == (3, 20, 10)
    for i in range(20):
        for j in range(10):
            assert torch.equal(big[:, i, j], base[:, i * 16 // 20, j * 8 // 10])


def test_keep_indices_are_exactly_the_visible_patches():
    base = draw_base_mask(5, (16, 8), 0.75, generator=torch.Generator().manual_seed(2))
    hidden = carry_mask(base, (20, 10)).flatten(1)
    keep_idx, keep_valid = keep_from_mask(hidden)
    counts = (~hidden).sum(1)
    assert keep_idx.shape[1] == int(counts.max())
    assert keep_valid.sum(1).tolist() == counts.tolist()
    for b in range(5):
        kept = keep_idx[b][keep_valid[b]]
        assert kept.tolist() == (~hidden[b]).nonzero().flatten().tolist()


def test_patchify_roundtrip_and_layout():
    imgs = torch.randn(2, 3, 64, 32)
    x = patchify(imgs, 16)
    assert x.shape == (2, 8, 768)
    torch.testing.assert_close(unpatchify(x, (4, 2), 16), imgs)
    # Patch 3 = row 1, col 1; first value = pixel (16, 16), channel 0; then channel 1.
    assert x[0, 3, 0] == imgs[0, 0, 16, 16] and x[0, 3, 1] == imgs[0, 1, 16, 16]


def test_targets_are_normalised_per_patch():
    t = patch_targets(torch.rand(2, 3, 32, 32) * 5 + 2, 16)
    torch.testing.assert_close(t.mean(-1), torch.zeros(2, 4), atol=1e-5, rtol=0)
    torch.testing.assert_close(t.std(-1), torch.ones(2, 4), atol=1e-3, rtol=0)


def test_loss_counts_only_hidden_patches():
    torch.manual_seed(0)
    imgs = torch.randn(2, 3, 64, 32)
    hidden = torch.tensor([[True, False, True, False, False, False, True, False]] * 2)
    target = patch_targets(imgs, 16)
    pred = target.clone()
    assert csr_loss(pred, imgs, hidden).item() < 1e-10
    pred_visible_changed = pred.clone()
    pred_visible_changed[~hidden] += 10.0
    assert csr_loss(pred_visible_changed, imgs, hidden).item() < 1e-10
    pred_hidden_changed = pred.clone()
    pred_hidden_changed[0, 2] += 1.0
    # One of the 6 hidden patches is off by 1 in every value: mean over hidden patches = 1/6.
    torch.testing.assert_close(csr_loss(pred_hidden_changed, imgs, hidden), torch.tensor(1 / 6))
    torch.testing.assert_close(masked_mse(pred_hidden_changed, target, hidden), torch.tensor(1 / 6))
