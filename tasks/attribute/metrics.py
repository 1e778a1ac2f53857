"""Pedestrian attribute metrics: label-based mA and instance-based accuracy / precision / recall / F1.

Pure numpy functions, defined exactly as Rethinking_of_PAR's ``metrics/pedestrian_metrics.py`` (the reference
the field reports against), including its conventions for empty rows and columns: every ratio is taken with
a tiny epsilon in the denominator, so an attribute without positives gets a positive recall of 0 and an
instance with neither true nor predicted positives gets accuracy, precision and recall 0; the instance F1 is
the harmonic mean of the *averaged* precision and recall, not the average of per-instance F1.
"""

from __future__ import annotations

import numpy as np

# Same epsilon as the reference so results agree to the last digit on degenerate rows / columns.
_EPS = 1e-20


def _binary(name: str, array: np.ndarray) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim != 2:
        raise ValueError(f"{name} must be a (samples, attributes) matrix, got shape {array.shape}")
    return array


def label_mean_accuracy(gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Per-attribute mean accuracy (recall on positives + recall on negatives) / 2.

    Args:
        gt: ``(N, A)`` ground truth, 1 = attribute present, 0 = absent.
        pred: ``(N, A)`` binary predictions.

    Returns:
        ``(A,)`` float64 array; its mean is the label-based mA.
    """
    gt, pred = _binary("gt", gt) == 1, _binary("pred", pred) == 1
    if gt.shape != pred.shape:
        raise ValueError(f"gt {gt.shape} and pred {pred.shape} differ in shape")
    pos = gt.sum(axis=0).astype(np.float64)
    neg = (~gt).sum(axis=0).astype(np.float64)
    true_pos = (gt & pred).sum(axis=0).astype(np.float64)
    true_neg = (~gt & ~pred).sum(axis=0).astype(np.float64)
    return (true_pos / (pos + _EPS) + true_neg / (neg + _EPS)) / 2


def instance_metrics(gt: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """Instance-based accuracy (IoU of the positive sets), precision, recall and F1, averaged over samples.

    Args:
        gt: ``(N, A)`` ground truth, 1 = attribute present.
        pred: ``(N, A)`` binary predictions.

    Returns:
        ``{"acc", "prec", "recall", "f1"}`` as floats in [0, 1].
    """
    gt, pred = _binary("gt", gt) == 1, _binary("pred", pred) == 1
    if gt.shape != pred.shape:
        raise ValueError(f"gt {gt.shape} and pred {pred.shape} differ in shape")
    gt_pos = gt.sum(axis=1).astype(np.float64)
    pred_pos = pred.sum(axis=1).astype(np.float64)
    inter = (gt & pred).sum(axis=1).astype(np.float64)
    union = (gt | pred).sum(axis=1).astype(np.float64)
    acc = float(np.mean(inter / (union + _EPS)))
    prec = float(np.mean(inter / (pred_pos + _EPS)))
    recall = float(np.mean(inter / (gt_pos + _EPS)))
    f1 = 2 * prec * recall / (prec + recall + _EPS)
    return {"acc": acc, "prec": prec, "recall": recall, "f1": float(f1)}


def pedestrian_metrics(gt: np.ndarray, scores: np.ndarray, *, threshold: float = 0.5) -> dict[str, float]:
    """All attribute metrics from scores: an attribute is predicted present when its score > ``threshold``.

    Args:
        gt: ``(N, A)`` ground truth, 1 = present, 0 = absent.
        scores: ``(N, A)`` probabilities (threshold 0.5) or logits (pass ``threshold=0``).
        threshold: strict decision threshold, as in the reference.

    Returns:
        ``{"mA", "acc", "prec", "recall", "f1"}`` as floats in [0, 1].
    """
    pred = _binary("scores", scores) > threshold
    result = {"mA": float(np.mean(label_mean_accuracy(gt, pred)))}
    result.update(instance_metrics(gt, pred))
    return result
