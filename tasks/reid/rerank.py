"""k-reciprocal re-ranking (Zhong et al., CVPR 2017), optional post-processing of a re-ID distance matrix.

Each image is described by a soft, weighted set of its k-reciprocal neighbours (expanded with the neighbours
of its close neighbours, then averaged over its k2 nearest); the final distance blends the Jaccard distance
between those sets with the original distance: ``(1 - lambda) * jaccard + lambda * original``.
"""

from __future__ import annotations

import numpy as np


def _k_reciprocal(rank: np.ndarray, i: int, k: int) -> np.ndarray:
    """Indices j among i's k nearest for which i is also among j's k nearest."""
    forward = rank[i, : k + 1]
    backward = rank[forward, : k + 1]
    return forward[(backward == i).any(1)]


def re_ranking(
    q_g_dist: np.ndarray,
    q_q_dist: np.ndarray,
    g_g_dist: np.ndarray,
    *,
    k1: int = 20,
    k2: int = 6,
    lambda_value: float = 0.3,
) -> np.ndarray:
    """Re-ranked ``(num_q, num_g)`` distance matrix.

    Args:
        q_g_dist: query x gallery distances.
        q_q_dist: query x query distances.
        g_g_dist: gallery x gallery distances.
        k1: size of the k-reciprocal neighbourhood.
        k2: neighbours averaged in the local query expansion (1 = none).
        lambda_value: weight of the original distance in the blend.
    """
    num_q = q_g_dist.shape[0]
    full = np.block([[q_q_dist, q_g_dist], [q_g_dist.T, g_g_dist]]).astype(np.float32) ** 2
    # Each row scaled by its maximum (the reference divides columns of the symmetric matrix, then transposes).
    dist = (full / full.max(axis=1, keepdims=True)).astype(np.float32)
    n = dist.shape[0]
    rank = np.argsort(dist, axis=1).astype(np.int32)
    half = int(np.around(k1 / 2))
    v = np.zeros((n, n), dtype=np.float32)
    for i in range(n):
        recip = _k_reciprocal(rank, i, k1)
        expansion = [recip]
        for cand in recip:
            cand_recip = _k_reciprocal(rank, int(cand), half)
            if len(np.intersect1d(cand_recip, recip)) > 2.0 / 3.0 * len(cand_recip):
                expansion.append(cand_recip)
        members = np.unique(np.concatenate(expansion))
        weight = np.exp(-dist[i, members])
        v[i, members] = weight / weight.sum()
    if k2 != 1:
        v = np.stack([v[rank[i, :k2]].mean(axis=0) for i in range(n)]).astype(np.float32)
    jaccard = np.zeros((num_q, n), dtype=np.float32)
    for i in range(num_q):
        nz = np.nonzero(v[i])[0]
        overlap = np.minimum(v[i, nz][None, :], v[:, nz]).sum(axis=1)
        jaccard[i] = 1.0 - overlap / (2.0 - overlap)
    final = jaccard * (1.0 - lambda_value) + dist[:num_q] * lambda_value
    return final[:, num_q:]
