"""CSR decoder: output shape on the enlarged grid, padding ignored, conditioning used."""

from __future__ import annotations

import torch

from saip_bench.pretrain.heads import CSRDecoder, sincos_pos_embed_2d


def _decoder():
    torch.manual_seed(0)
    return CSRDecoder(24, patch_size=4, decoder_dim=32, depth=2, num_heads=4, base_grid=(4, 2)).eval()


def test_output_shape_on_enlarged_grid():
    dec = _decoder()
    keep = torch.tensor([[0, 3, 7, 11], [1, 2, 5, 14]])
    out = dec(torch.randn(2, 5, 24), keep, (5, 3), torch.randn(2, 24))
    assert out.shape == (2, 15, 4 * 4 * 3)


def test_padding_entries_do_not_write_into_the_grid():
    dec = _decoder()
    tokens = torch.randn(1, 4, 24)
    keep = torch.tensor([[2, 6, 0]])
    valid = torch.tensor([[True, True, False]])
    cond = torch.randn(1, 2, 24)
    padded = dec(tokens, keep, (4, 2), cond, keep_valid=valid)
    # Patch 0 is hidden: the padding token (pointing at index 0) must not land there.
    tokens_changed = tokens.clone()
    tokens_changed[0, 3] += 10
    torch.testing.assert_close(dec(tokens_changed, keep, (4, 2), cond, keep_valid=valid), padded)
    # Equals the decoder run on the two real tokens alone (blocks see the same sequence).
    alone = dec(tokens[:, :3], keep[:, :2], (4, 2), cond)
    torch.testing.assert_close(alone, padded)


def test_condition_changes_the_prediction():
    dec = _decoder()
    tokens, keep = torch.randn(1, 3, 24), torch.tensor([[1, 4]])
    a = dec(tokens, keep, (4, 2), torch.randn(1, 24))
    b = dec(tokens, keep, (4, 2), torch.randn(1, 24))
    assert not torch.allclose(a, b)


def test_sincos_codes_align_scales():
    base = sincos_pos_embed_2d(16, (16, 8))
    same = sincos_pos_embed_2d(16, (16, 8), (16, 8))
    torch.testing.assert_close(base, same)
    double = sincos_pos_embed_2d(16, (32, 16), (16, 8)).reshape(32, 16, 16)
    # The centre of base cell (0, 0) lies between enlarged cells 0 and 1: the mean code is close.
    mean = (double[0, 0] + double[1, 1]) / 2
    assert (mean - base[0]).abs().max() < 0.2
