"""Re-ID retrieval metrics: CMC and mAP with the Market-1501 protocol, the same numbers as torchreid.

Protocol (torchreid ``eval_market1501``): for each query, gallery entries with the same pid AND the same
camera are removed; the remaining gallery entries with the query's pid are the relevant ones; a query with no
relevant entry is left out of both CMC and mAP. Distractors (pid 0) never match a query and stay in the
ranking; junk (pid -1) is dropped by the loaders.

Why it is fast: instead of argsorting every gallery row (``O(G log G)`` per query plus a ``G``-long index
permutation), only the few relevant distances of each query are sorted; every gallery entry is placed among
them with one ``searchsorted`` (``O(G log P)``), and a per-row histogram gives how many non-relevant entries
precede each relevant one - which is all AP and CMC need. Rows where a non-relevant distance exactly equals a
relevant one (ties, where the order is a convention) fall back to numpy's argsort, as torchreid sorts.
"""

from __future__ import annotations

import numpy as np
import torch

_CHUNK_ELEMENTS = 1 << 20  # rows per chunk x gallery size: temporaries stay cache-sized (~10 MB each)


def _as_tensor(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    return x.detach().cpu() if isinstance(x, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(x))


def _rows_by_sort(
    d: torch.Tensor, good: torch.Tensor, kept: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sorting path for rows with ties: (AP, first kept rank) per row; rows must be valid.

    Uses numpy's default argsort, the one torchreid uses, so even tied distances order identically.
    """
    order = torch.from_numpy(np.argsort(d.numpy(), axis=1))
    good_s = torch.gather(good, 1, order)
    kept_s = torch.gather(kept, 1, order)
    rank = torch.cumsum(kept_s, dim=1) - 1  # position among kept entries
    hits = torch.cumsum(good_s, dim=1)
    precision = torch.where(good_s, hits.double() / (rank + 1).double(), torch.zeros((), dtype=torch.float64))
    ap = precision.sum(1) / good_s.sum(1).double()
    first = torch.argmax(good_s.to(torch.uint8), dim=1)
    return ap, torch.gather(rank, 1, first[:, None])[:, 0]


def _chunk(
    d: torch.Tensor, qp: torch.Tensor, qc: torch.Tensor, gp: torch.Tensor, gc: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """AP and first kept rank of the valid rows of one query chunk, and the valid-row mask."""
    match = gp[None, :] == qp[:, None]
    same_cam = gc[None, :] == qc[:, None]
    good = match & ~same_cam
    other = ~match  # kept and not relevant: other identities and distractors
    n_good = good.sum(1)
    valid = n_good > 0
    d, good, other, match, same_cam, n_good = (t[valid] for t in (d, good, other, match, same_cam, n_good))
    if d.shape[0] == 0:
        empty = torch.zeros(0, dtype=torch.float64)
        return empty, torch.zeros(0, dtype=torch.long), valid
    p_max = int(n_good.max())
    inf = torch.tensor(float("inf"), dtype=d.dtype)
    # The relevant distances of each row, ascending, padded with +inf.
    pos = torch.topk(torch.where(good, d, inf), p_max, dim=1, largest=False, sorted=True).values
    right = torch.searchsorted(pos, d, right=True, out_int32=True)  # relevant distances <= d_g
    # A tie: an other entry whose distance equals the largest relevant distance <= it.
    below = torch.gather(pos, 1, (right.long() - 1).clamp_(min=0))
    tie_rows = ((below == d) & (right > 0) & other).any(1)
    # other entries strictly closer than the k-th relevant one: those with right <= k.
    hist = torch.zeros(d.shape[0], p_max + 1, dtype=torch.int32)
    hist.scatter_add_(1, right.long(), other.int())
    before = torch.cumsum(hist, dim=1, dtype=torch.long)[:, :p_max]
    k = torch.arange(p_max)
    rank = before + k[None, :]  # position of the k-th relevant entry among kept entries
    in_row = k[None, :] < n_good[:, None]
    precision = torch.where(
        in_row, (k + 1).double()[None, :] / (rank + 1).double(), torch.zeros((), dtype=torch.float64)
    )
    ap = precision.sum(1) / n_good.double()
    first = rank[:, 0].clone()
    if bool(tie_rows.any()):
        kept = ~(match & same_cam)
        ap_t, first_t = _rows_by_sort(d[tie_rows], good[tie_rows], kept[tie_rows])
        ap[tie_rows], first[tie_rows] = ap_t, first_t
    return ap, first, valid


def evaluate_rank(
    distmat: np.ndarray | torch.Tensor,
    q_pids: np.ndarray,
    g_pids: np.ndarray,
    q_camids: np.ndarray,
    g_camids: np.ndarray,
    max_rank: int = 50,
) -> tuple[np.ndarray, float]:
    """CMC curve and mAP of a query x gallery distance matrix (Market-1501 protocol).

    Args:
        distmat: ``(num_q, num_g)`` distances, smaller = more similar (float32 or float64).
        q_pids: ``(num_q,)`` query person ids.
        g_pids: ``(num_g,)`` gallery person ids (distractors have their own id, e.g. 0).
        q_camids: ``(num_q,)`` query camera ids.
        g_camids: ``(num_g,)`` gallery camera ids.
        max_rank: length of the CMC curve (cut to ``num_g`` when the gallery is smaller).

    Returns:
        ``(cmc, mAP)``: ``cmc[k]`` is the fraction of valid queries with a relevant entry in the top ``k + 1``
        (float32, as torchreid returns it); ``mAP`` is the mean AP over valid queries, as fractions in [0, 1].

    Raises:
        ValueError: shapes disagree, or no query has a relevant gallery entry.
    """
    d = _as_tensor(distmat)
    if not d.is_floating_point():
        d = d.double()
    qp, gp, qc, gc = (_as_tensor(np.asarray(a)).long() for a in (q_pids, g_pids, q_camids, g_camids))
    num_q, num_g = d.shape
    if qp.shape != (num_q,) or qc.shape != (num_q,) or gp.shape != (num_g,) or gc.shape != (num_g,):
        raise ValueError(
            f"evaluate_rank: distmat is {tuple(d.shape)} but got {len(qp)} query pids, {len(qc)} query cams, "
            f"{len(gp)} gallery pids, {len(gc)} gallery cams"
        )
    max_rank = min(max_rank, num_g)
    rows = max(1, _CHUNK_ELEMENTS // max(1, num_g))
    aps, firsts = [], []
    for start in range(0, num_q, rows):
        stop = min(num_q, start + rows)
        ap, first, _ = _chunk(d[start:stop], qp[start:stop], qc[start:stop], gp, gc)
        aps.append(ap)
        firsts.append(first)
    ap_all = torch.cat(aps)
    if ap_all.numel() == 0:
        raise ValueError("evaluate_rank: no query identity appears in the gallery (under another camera)")
    first_all = torch.cat(firsts)
    counts = torch.bincount(first_all.clamp(max=max_rank), minlength=max_rank + 1)[:max_rank]
    cmc = torch.cumsum(counts, 0).numpy().astype(np.float32) / np.float32(ap_all.numel())
    return cmc, float(ap_all.numpy().mean())


def rank_metrics(cmc: np.ndarray, mean_ap: float) -> dict[str, float]:
    """The numbers a re-ID record stores, in percent: ``mAP``, ``R1``, ``R5``, ``R10``."""
    out = {"mAP": 100.0 * float(mean_ap)}
    for k in (1, 5, 10):
        out[f"R{k}"] = 100.0 * float(cmc[min(k, len(cmc)) - 1])
    return out
