"""CMC/mAP: identical to torchreid's evaluate_rank; the Market-1501 protocol rules on a hand-built case."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from saip_bench.tasks.reid.metrics import evaluate_rank, rank_metrics

with warnings.catch_warnings():  # torchreid warns at import that its Cython ranker is not compiled
    warnings.simplefilter("ignore")
    from torchreid.reid.metrics.rank import evaluate_rank as torchreid_evaluate_rank


def _reference(distmat, q_pids, g_pids, q_cams, g_cams, max_rank=50):
    return torchreid_evaluate_rank(
        distmat, q_pids, g_pids, q_cams, g_cams, max_rank=max_rank, use_cython=False
    )


def _random_case(seed: int, dtype, ties: bool):
    rng = np.random.default_rng(seed)
    nq, ng = int(rng.integers(5, 40)), int(rng.integers(60, 250))
    q_pids, g_pids = rng.integers(0, 15, nq), rng.integers(0, 15, ng)
    q_cams, g_cams = rng.integers(1, 5, nq), rng.integers(1, 5, ng)
    distmat = rng.integers(0, 6, (nq, ng)) if ties else rng.random((nq, ng))
    return distmat.astype(dtype), q_pids, g_pids, q_cams, g_cams


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ties", [False, True])
def test_matches_torchreid_on_random_cases(seed: int, dtype, ties: bool) -> None:
    case = _random_case(seed, dtype, ties)
    cmc, mean_ap = evaluate_rank(*case, max_rank=50)
    ref_cmc, ref_map = _reference(*case)
    assert cmc.shape == ref_cmc.shape == (50,)
    np.testing.assert_allclose(cmc, ref_cmc, atol=1e-6, rtol=0)
    assert mean_ap == pytest.approx(float(ref_map), abs=1e-6)


def test_matches_torchreid_on_a_hand_made_case_and_small_gallery() -> None:
    # A gallery smaller than max_rank cuts the curve, as torchreid does.
    distmat = np.array([[0.3, 0.1, 0.2, 0.9], [0.5, 0.4, 0.3, 0.2], [0.1, 0.2, 0.3, 0.4]], dtype=np.float32)
    q_pids, g_pids = np.array([1, 2, 3]), np.array([1, 2, 1, 3])
    q_cams, g_cams = np.array([1, 1, 2]), np.array([2, 2, 3, 1])
    cmc, mean_ap = evaluate_rank(distmat, q_pids, g_pids, q_cams, g_cams, max_rank=50)
    ref_cmc, ref_map = _reference(distmat, q_pids, g_pids, q_cams, g_cams)
    assert len(cmc) == 4
    np.testing.assert_allclose(cmc, ref_cmc, atol=1e-6)
    assert mean_ap == pytest.approx(float(ref_map), abs=1e-6)


def test_same_camera_removal_distractors_and_unanswerable_queries() -> None:
    # Gallery: g0 pid1 cam1 (same pid + camera as q0: removed), g1 distractor pid 0, g2 pid1 cam2,
    # g3 pid2 cam1, g4 pid1 cam3, g5 pid3 cam1 (q2's only image, same camera: q2 has no answer, left out).
    g_pids, g_cams = np.array([1, 0, 1, 2, 1, 3]), np.array([1, 2, 2, 1, 3, 1])
    q_pids, q_cams = np.array([1, 2, 3]), np.array([1, 2, 1])
    distmat = np.array(
        [
            [0.1, 0.2, 0.3, 0.4, 0.5, 0.6],  # kept ranking: distractor, hit, miss, hit -> AP (1/2 + 2/4) / 2
            [0.9, 0.8, 0.7, 0.05, 0.6, 0.5],  # g3 first -> AP 1
            [0.9, 0.8, 0.7, 0.6, 0.5, 0.1],
        ]
    )
    cmc, mean_ap = evaluate_rank(distmat, q_pids, g_pids, q_cams, g_cams, max_rank=5)
    assert mean_ap == pytest.approx((0.5 + 1.0) / 2)
    np.testing.assert_allclose(cmc, [0.5, 1.0, 1.0, 1.0, 1.0])
    ref_cmc, ref_map = _reference(distmat, q_pids, g_pids, q_cams, g_cams, max_rank=5)
    np.testing.assert_allclose(cmc, ref_cmc)
    assert mean_ap == pytest.approx(float(ref_map))
    # Were the same-camera image kept, q0 would hit at rank 1.
    cmc_all, _ = evaluate_rank(distmat, q_pids, g_pids, q_cams, np.array([9, 2, 2, 1, 3, 1]), max_rank=5)
    assert cmc_all[0] == 1.0


def test_no_answerable_query_and_bad_shapes_raise() -> None:
    with pytest.raises(ValueError, match="no query"):
        evaluate_rank(np.zeros((1, 2)), np.array([1]), np.array([1, 2]), np.array([1]), np.array([1, 2]))
    with pytest.raises(ValueError, match="distmat"):
        evaluate_rank(np.zeros((2, 2)), np.array([1]), np.array([1, 2]), np.array([1]), np.array([1, 2]))


def test_rank_metrics_in_percent() -> None:
    cmc = np.linspace(0.5, 1.0, 50, dtype=np.float32)
    out = rank_metrics(cmc, 0.25)
    assert out["mAP"] == pytest.approx(25.0)
    assert out["R1"] == pytest.approx(50.0)
    assert out["R10"] == pytest.approx(100.0 * float(cmc[9]))


def test_chunked_evaluation_gives_the_same_numbers(monkeypatch: pytest.MonkeyPatch) -> None:
    import saip_bench.tasks.reid.metrics as metrics

    distmat, q_pids, g_pids, q_cams, g_cams = _random_case(7, np.float32, ties=False)
    q_pids[:3] = 99  # a first chunk of unanswerable queries only
    whole = evaluate_rank(distmat, q_pids, g_pids, q_cams, g_cams)
    monkeypatch.setattr(metrics, "_CHUNK_ELEMENTS", 3 * distmat.shape[1])
    chunked = evaluate_rank(distmat, q_pids, g_pids, q_cams, g_cams)
    np.testing.assert_array_equal(whole[0], chunked[0])
    assert whole[1] == chunked[1]
    ref_cmc, ref_map = _reference(distmat, q_pids, g_pids, q_cams, g_cams)
    np.testing.assert_allclose(chunked[0], ref_cmc, atol=1e-6)
    assert chunked[1] == pytest.approx(float(ref_map), abs=1e-6)
