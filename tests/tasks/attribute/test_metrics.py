"""Attribute metrics against hand-computed values and a direct per-row / per-column recount."""

from __future__ import annotations

import numpy as np
import pytest

from saip_bench.tasks.attribute.metrics import instance_metrics, label_mean_accuracy, pedestrian_metrics

# 4 samples x 3 attributes, worked out by hand below.
GT = np.array([[1, 0, 1], [0, 1, 1], [1, 1, 0], [0, 0, 0]])
PRED = np.array([[1, 0, 0], [1, 1, 1], [0, 1, 0], [0, 0, 1]])


def test_label_mean_accuracy_by_hand() -> None:
    # attr 0: positives rows 0,2 -> TP row 0 only (1/2); negatives rows 1,3 -> TN row 3 only (1/2) -> 0.5
    # attr 1: positives rows 1,2 both hit (1); negatives rows 0,3 both rejected (1) -> 1.0
    # attr 2: positives rows 0,1 -> row 1 hit (1/2); negatives rows 2,3 -> row 2 rejected (1/2) -> 0.5
    np.testing.assert_allclose(label_mean_accuracy(GT, PRED), [0.5, 1.0, 0.5])


def test_instance_metrics_by_hand() -> None:
    # row: |gt & pred|, |gt | pred|, |pred|, |gt|
    # 0: 1, 2, 1, 2 -> acc 1/2, prec 1,   rec 1/2
    # 1: 2, 3, 3, 2 -> acc 2/3, prec 2/3, rec 1
    # 2: 1, 2, 1, 2 -> acc 1/2, prec 1,   rec 1/2
    # 3: 0, 1, 1, 0 -> acc 0,   prec 0,   rec 0 (no positives: 0 / (0 + eps))
    got = instance_metrics(GT, PRED)
    assert got["acc"] == pytest.approx(5 / 12)
    assert got["prec"] == pytest.approx(2 / 3)
    assert got["recall"] == pytest.approx(1 / 2)
    # F1 of the averaged precision and recall: 2 * (2/3) * (1/2) / (2/3 + 1/2) = 4/7
    assert got["f1"] == pytest.approx(4 / 7)


def test_pedestrian_metrics_threshold_is_strict() -> None:
    scores = np.where(PRED == 1, 0.9, 0.1)
    scores[3, 0] = 0.5  # exactly at the threshold: negative, as in the reference (probs > threshold)
    got = pedestrian_metrics(GT, scores)
    assert got["mA"] == pytest.approx(2 / 3)
    assert got["acc"] == pytest.approx(5 / 12)
    assert got["f1"] == pytest.approx(4 / 7)
    assert pedestrian_metrics(GT, np.where(PRED == 1, 2.0, -2.0), threshold=0.0)["mA"] == pytest.approx(2 / 3)


def test_perfect_and_inverted_predictions() -> None:
    assert pedestrian_metrics(GT, GT.astype(float))["mA"] == pytest.approx(1.0)
    got = pedestrian_metrics(GT, 1.0 - GT)
    assert got["mA"] == pytest.approx(0.0)
    assert got["acc"] == pytest.approx(0.0)


def test_against_a_direct_recount_on_random_data() -> None:
    rng = np.random.default_rng(0)
    gt = (rng.random((50, 7)) < 0.3).astype(int)
    scores = rng.random((50, 7))
    pred = scores > 0.5
    got = pedestrian_metrics(gt, scores)
    ma = []
    for j in range(7):
        pos, neg = gt[:, j] == 1, gt[:, j] == 0
        ma.append(((pred[pos, j]).mean() + (~pred[neg, j]).mean()) / 2)
    assert got["mA"] == pytest.approx(np.mean(ma))
    accs, precs, recs = [], [], []
    for g, p in zip(gt == 1, pred, strict=True):
        inter = (g & p).sum()
        accs.append(inter / (g | p).sum() if (g | p).any() else 0.0)
        precs.append(inter / p.sum() if p.any() else 0.0)
        recs.append(inter / g.sum() if g.any() else 0.0)
    assert got["acc"] == pytest.approx(np.mean(accs))
    assert got["prec"] == pytest.approx(np.mean(precs))
    assert got["recall"] == pytest.approx(np.mean(recs))


def test_shape_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match="shape"):
        label_mean_accuracy(GT, PRED[:, :2])
    with pytest.raises(ValueError, match="matrix"):
        pedestrian_metrics(GT[0], PRED[0].astype(float))
