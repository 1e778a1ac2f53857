"""Re-ID evaluation of a model: flip-averaged features, Euclidean or cosine distances, optional re-ranking.

The features come from the suite's one extractor, :func:`saip_bench.evaluate.linear.extract_features`
(bfloat16 autocast on CUDA, query and gallery split across the ranks under DDP).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from saip_bench.engine import ProgressFn
from saip_bench.evaluate.linear import extract_features
from saip_bench.tasks.reid.dataset import ReidImages, build_transforms
from saip_bench.tasks.reid.metrics import evaluate_rank, rank_metrics

Item = tuple[Path, int, int]
DISTANCES = ("euclidean", "cosine")


def distance_matrix(query: torch.Tensor, gallery: torch.Tensor, metric: str = "euclidean") -> torch.Tensor:
    """``euclidean``: squared Euclidean distances (same ranking, as torchreid computes them); ``cosine``:
    ``1 - cos`` of the L2-normalised features."""
    if metric == "cosine":
        return 1.0 - F.normalize(query, dim=1) @ F.normalize(gallery, dim=1).t()
    if metric != "euclidean":
        raise ValueError(f"unknown distance {metric!r}; valid: {', '.join(DISTANCES)}")
    d = query.pow(2).sum(1, keepdim=True) + gallery.pow(2).sum(1)[None, :] - 2.0 * query @ gallery.t()
    return d.clamp_(min=0)


def subset_eval(
    query: Sequence[Item],
    gallery: Sequence[Item],
    *,
    max_query: int | None,
    max_gallery: int | None,
    seed: int,
) -> tuple[list[Item], list[Item]]:
    """A smaller query/gallery pair for smoke budgets that keeps every kept query answerable.

    ``max_query`` queries are drawn at random; the gallery keeps every image of their identities, then other
    images at random up to ``max_gallery`` in total.
    """
    rng = np.random.default_rng(seed)
    query, gallery = list(query), list(gallery)
    if max_query is not None and len(query) > max_query:
        query = [query[i] for i in sorted(rng.choice(len(query), max_query, replace=False))]
    if max_gallery is not None and len(gallery) > max_gallery:
        pids = {pid for _, pid, _ in query}
        keep = [i for i, (_, pid, _) in enumerate(gallery) if pid in pids]
        others = [i for i, (_, pid, _) in enumerate(gallery) if pid not in pids]
        room = max(0, max_gallery - len(keep))
        extra = rng.choice(len(others), min(room, len(others)), replace=False) if others else []
        gallery = [gallery[i] for i in sorted(keep + [others[j] for j in extra])]
    return query, gallery


def evaluate_model(
    model: nn.Module,
    query: Sequence[Item],
    gallery: Sequence[Item],
    *,
    img_size: tuple[int, int],
    device: torch.device,
    distance: str = "euclidean",
    rerank: bool = False,
    flip: bool = True,
    batch_size: int = 128,
    workers: int = 0,
    max_rank: int = 50,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    progress: ProgressFn | None = None,
) -> dict[str, float]:
    """Rank the gallery for every query and return ``mAP``, ``R1``, ``R5``, ``R10`` in percent."""
    kwargs = {k: v for k, v in (("mean", mean), ("std", std)) if v is not None}
    transform = build_transforms(img_size, train=False, **kwargs)
    common: dict[str, Any] = dict(
        device=device, batch_size=batch_size, workers=workers, flip=flip, amp=True, progress=progress
    )
    qf = extract_features(model, ReidImages(query, transform), description="query features", **common)
    gf = extract_features(model, ReidImages(gallery, transform), description="gallery features", **common)
    distmat = distance_matrix(qf, gf, distance)
    if rerank:
        from saip_bench.tasks.reid.rerank import re_ranking

        qq, gg = distance_matrix(qf, qf, distance), distance_matrix(gf, gf, distance)
        if distance == "euclidean":  # re-ranking squares its input: give it plain distances
            distmat, qq, gg = distmat.sqrt(), qq.sqrt(), gg.sqrt()
        distmat = torch.from_numpy(re_ranking(distmat.numpy(), qq.numpy(), gg.numpy()))
    arrays = [np.asarray([x[k] for x in items]) for items in (query, gallery) for k in (1, 2)]
    q_pids, q_cams, g_pids, g_cams = arrays
    cmc, mean_ap = evaluate_rank(distmat.numpy(), q_pids, g_pids, q_cams, g_cams, max_rank=max_rank)
    return rank_metrics(cmc, mean_ap)
