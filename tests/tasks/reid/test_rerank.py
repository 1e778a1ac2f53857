"""k-reciprocal re-ranking against torchreid's reference implementation."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from saip_bench.tasks.reid.rerank import re_ranking

with warnings.catch_warnings():  # torchreid warns at import that its Cython ranker is not compiled
    warnings.simplefilter("ignore")
    from torchreid.reid.utils.rerank import re_ranking as torchreid_re_ranking


def _dist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sqrt(((a[:, None] - b[None]) ** 2).sum(-1))


@pytest.mark.parametrize(("seed", "k1", "k2"), [(0, 20, 6), (1, 5, 1), (2, 8, 3)])
def test_matches_torchreid(seed: int, k1: int, k2: int) -> None:
    rng = np.random.default_rng(seed)
    q, g = rng.standard_normal((12, 8)), rng.standard_normal((50, 8))
    ours = re_ranking(_dist(q, g), _dist(q, q), _dist(g, g), k1=k1, k2=k2, lambda_value=0.3)
    ref = torchreid_re_ranking(_dist(q, g), _dist(q, q), _dist(g, g), k1=k1, k2=k2, lambda_value=0.3)
    assert ours.shape == (12, 50)
    np.testing.assert_allclose(ours, ref, atol=1e-5)
