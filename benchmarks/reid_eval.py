"""Time our re-ID CMC/mAP against torchreid's on a Market-1501-sized problem and compare the numbers.

Problem: 3,368 queries x 15,913 gallery, random L2-normalised 192-d features, Euclidean distances, 751
identities (plus distractors, pid 0, in the gallery), 6 cameras. torchreid's fastest available path is used:
its Cython ranker when compiled, else its pure-Python ``evaluate_py`` (the PyPI wheel ships no Cython).

Run: ``python benchmarks/reid_eval.py [--queries N --gallery M]``; prints both times, the speed ratio and the
largest absolute difference of the CMC curve and of mAP. Target: no slower, identical numbers.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import torch


def make_problem(num_q: int, num_g: int, ids: int, cams: int, dim: int, seed: int):
    """Random features with an identity signal, so the metric sees a realistic mix of hits and misses."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((ids + 1, dim)).astype(np.float32)
    q_pids = rng.integers(1, ids + 1, num_q)
    g_pids = rng.integers(0, ids + 1, num_g)  # 0 = distractor
    q_cams = rng.integers(1, cams + 1, num_q)
    g_cams = rng.integers(1, cams + 1, num_g)
    qf = torch.from_numpy(centres[q_pids] + 2.0 * rng.standard_normal((num_q, dim)).astype(np.float32))
    gf = torch.from_numpy(centres[g_pids] + 2.0 * rng.standard_normal((num_g, dim)).astype(np.float32))
    qf, gf = torch.nn.functional.normalize(qf, dim=1), torch.nn.functional.normalize(gf, dim=1)
    distmat = torch.cdist(qf, gf).pow(2).numpy()
    return distmat, q_pids, g_pids, q_cams, g_cams


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=3368)
    parser.add_argument("--gallery", type=int, default=15913)
    parser.add_argument("--ids", type=int, default=751)
    parser.add_argument("--cams", type=int, default=6)
    parser.add_argument("--dim", type=int, default=192)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from saip_bench.tasks.reid.metrics import evaluate_rank

    warnings.filterwarnings("ignore")
    from torchreid.reid.metrics import rank as tr_rank

    problem = make_problem(args.queries, args.gallery, args.ids, args.cams, args.dim, args.seed)
    print(f"problem: {args.queries} x {args.gallery}, {args.ids} ids, {args.cams} cameras, {args.dim}-d, "
          f"torch threads {torch.get_num_threads()}")  # fmt: skip

    t0 = time.perf_counter()
    cmc_ours, map_ours = evaluate_rank(*problem, max_rank=50)
    t_ours = time.perf_counter() - t0

    cython = bool(getattr(tr_rank, "IS_CYTHON_AVAI", False))
    t0 = time.perf_counter()
    cmc_ref, map_ref = tr_rank.evaluate_rank(*problem, max_rank=50, use_cython=cython)
    t_ref = time.perf_counter() - t0

    path = "cython" if cython else "python (evaluate_py; no Cython in this torchreid)"
    print(f"ours:      {t_ours:8.3f} s   mAP {map_ours:.6f}  R1 {cmc_ours[0]:.6f}")
    print(f"torchreid: {t_ref:8.3f} s   mAP {map_ref:.6f}  R1 {cmc_ref[0]:.6f}   [{path}]")
    print(f"speed ratio (torchreid / ours): {t_ref / t_ours:.1f}x")
    print(
        f"max |diff| CMC: {np.abs(cmc_ours - cmc_ref).max():.3g}   |diff| mAP: {abs(map_ours - map_ref):.3g}"
    )


if __name__ == "__main__":
    main()
