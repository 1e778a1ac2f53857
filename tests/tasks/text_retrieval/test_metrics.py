"""Text-to-image Rank-k / mAP / mINP against values computed by hand, as IRRA's ``rank`` defines them."""

from __future__ import annotations

import numpy as np
import pytest

from saip_bench.tasks.text_retrieval.metrics import cosine_similarity, rank_metrics

# 3 text queries (ids 1, 2, 3) against 4 gallery images (ids 1, 2, 1, 3).
SIM = np.array(
    [
        [0.9, 0.8, 0.1, 0.0],  # ranking 0,1,2,3 -> ids 1,2,1,3: matches at positions 1 and 3
        [0.9, 0.2, 0.8, 0.1],  # ranking 0,2,1,3 -> ids 1,1,2,3: match at position 3
        [0.1, 0.2, 0.3, 0.4],  # ranking 3,2,1,0 -> ids 3,1,2,1: match at position 1
    ]
)
QIDS = np.array([1, 2, 3])
GIDS = np.array([1, 2, 1, 3])


def test_rank_metrics_match_hand_computation() -> None:
    out = rank_metrics(SIM, QIDS, GIDS)
    # CMC: R1 hits q0, q2 -> 2/3; by rank 4 (the whole gallery) all three hit; R5/R10 cap at gallery size.
    assert out["R1"] == pytest.approx(200 / 3)
    # The gallery has only 4 images: Rank-5 and Rank-10 saturate at Rank-4, where every query has hit.
    assert out["R5"] == out["R10"] == pytest.approx(100.0)
    # AP q0 = (1/1 + 2/3) / 2 = 5/6; q1 = (1/3) / 1; q2 = 1.
    assert out["mAP"] == pytest.approx(100 * (5 / 6 + 1 / 3 + 1) / 3)
    # INP = matches / position of the last match: q0 2/3, q1 1/3, q2 1.
    assert out["mINP"] == pytest.approx(100 * (2 / 3 + 1 / 3 + 1) / 3)


def test_rank5_and_10_with_a_larger_gallery() -> None:
    rng = np.random.default_rng(0)
    gids = np.arange(12)
    sim = rng.random((12, 12))
    sim[np.arange(12), np.arange(12)] = -1.0  # every query's only match ranked last
    sim[0, 0] = 2.0  # ... except query 0, whose match is first
    sim[1, 1] = 0.5 * (np.sort(sim[1])[-5] + np.sort(sim[1])[-6])  # query 1: match at position 6
    out = rank_metrics(sim, gids, gids)
    assert out["R1"] == pytest.approx(100 / 12)
    assert out["R5"] == pytest.approx(100 / 12)
    assert out["R10"] == pytest.approx(200 / 12)
    assert out["mAP"] == pytest.approx(100 * (1 + 1 / 6 + 10 / 12) / 12)


def test_perfect_and_reversed_rankings() -> None:
    ids = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
    assert rank_metrics(np.eye(11), ids, ids) == {
        "R1": 100.0,
        "R5": 100.0,
        "R10": 100.0,
        "mAP": 100.0,
        "mINP": 100.0,
    }
    worst = rank_metrics(-np.eye(11), ids, ids)
    assert worst["R1"] == 0.0 and worst["R10"] == 0.0 and worst["mAP"] == pytest.approx(100 / 11)


def test_ties_keep_gallery_order_and_bad_shapes_fail() -> None:
    out = rank_metrics(np.zeros((1, 3)), np.array([5]), np.array([4, 5, 5]))
    assert out["R1"] == 0.0 and out["mAP"] == pytest.approx(100 * (1 / 2 + 2 / 3) / 2)
    with pytest.raises(ValueError, match="does not match"):
        rank_metrics(np.zeros((2, 3)), np.array([1]), np.array([1, 2, 3]))
    with pytest.raises(ValueError, match="no query"):
        rank_metrics(np.zeros((1, 2)), np.array([9]), np.array([1, 2]))


def test_cosine_similarity_normalises_rows() -> None:
    sim = cosine_similarity(np.array([[2.0, 0.0], [1.0, 1.0]]), np.array([[0.0, 3.0], [5.0, 0.0]]))
    assert sim == pytest.approx(np.array([[0.0, 1.0], [np.sqrt(0.5), np.sqrt(0.5)]]))
