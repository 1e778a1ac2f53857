"""Text-to-image retrieval metrics as IRRA's ``utils/metrics.py`` ``rank`` computes them.

Every caption is a query; the gallery is every test image. For each query the gallery is sorted by
similarity (highest first); Rank-k is the percentage of queries with a same-identity image among the top k
(CMC), AP is the mean of precision@i over the positions i of the query's matches, mAP the mean AP over
queries and mINP the mean of (number of matches / position of the last match). Ties keep gallery order.
"""

from __future__ import annotations

import numpy as np


def rank_metrics(
    similarity: np.ndarray, query_ids: np.ndarray, gallery_ids: np.ndarray, *, max_rank: int = 10
) -> dict[str, float]:
    """Rank-1/5/10 (``R1``, ``R5``, ``R10``), ``mAP`` and ``mINP`` in percent.

    Args:
        similarity: ``(Q, G)`` query-gallery similarities (higher = more alike).
        query_ids: ``(Q,)`` identity of each query.
        gallery_ids: ``(G,)`` identity of each gallery item.
        max_rank: the largest k of the CMC curve; ``R5``/``R10`` are reported when it reaches them.

    Raises:
        ValueError: shapes disagree, or no query has a match in the gallery.
    """
    similarity = np.asarray(similarity, dtype=np.float64)
    query_ids, gallery_ids = np.asarray(query_ids).reshape(-1), np.asarray(gallery_ids).reshape(-1)
    if similarity.shape != (len(query_ids), len(gallery_ids)):
        raise ValueError(
            f"similarity {similarity.shape} does not match {len(query_ids)} x {len(gallery_ids)}"
        )
    order = np.argsort(-similarity, axis=1, kind="stable")
    matches = gallery_ids[order] == query_ids[:, None]  # (Q, G), True where position i is a match
    num_rel = matches.sum(1)
    valid = num_rel > 0
    if not valid.any():
        raise ValueError("no query has a matching identity in the gallery")
    # IRRA divides by the number of matches per query; a query with none would be NaN, so only queries with
    # at least one match count (real PEDES test sets always have one: the caption's own image).
    matches, num_rel = matches[valid], num_rel[valid]
    k = min(max_rank, matches.shape[1])
    cmc = (matches[:, :k].cumsum(1) >= 1).mean(0) * 100.0
    # A gallery smaller than max_rank (tiny synthetic sets) saturates: Rank-k for k >= G is Rank-G, so the
    # reported keys stay the same whatever the gallery size (IRRA's cmc[4] would fail there instead).
    cmc = np.concatenate([cmc, np.full(max_rank - k, cmc[-1])])
    hits = matches.cumsum(1)
    positions = np.arange(1, matches.shape[1] + 1)
    ap = ((hits / positions) * matches).sum(1) / num_rel
    last = matches.shape[1] - 1 - np.argmax(matches[:, ::-1], axis=1)  # 0-based position of the last match
    inp = num_rel / (last + 1)
    out = {f"R{r}": float(cmc[r - 1]) for r in (1, 5, 10) if r <= max_rank}
    out["mAP"] = float(ap.mean() * 100.0)
    out["mINP"] = float(inp.mean() * 100.0)
    return out


def cosine_similarity(queries: np.ndarray, gallery: np.ndarray) -> np.ndarray:
    """``(Q, G)`` cosine similarities of row vectors."""
    q = np.asarray(queries, dtype=np.float64)
    g = np.asarray(gallery, dtype=np.float64)
    q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
    g = g / np.maximum(np.linalg.norm(g, axis=1, keepdims=True), 1e-12)
    return q @ g.T
