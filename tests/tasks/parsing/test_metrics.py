"""Parsing metrics on hand-made confusion matrices (values checked by hand, mmseg's definitions)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from saip_bench.tasks.parsing.metrics import segmentation_metrics, update_confusion


def test_hand_made_confusion_matrix() -> None:
    # rows = ground truth, columns = prediction; class 2 never occurs (NaN, excluded from the means)
    conf = np.array([[8, 2, 0], [1, 3, 0], [0, 0, 0]])
    m = segmentation_metrics(conf, ("a", "b", "c"))
    iou_a, iou_b = 8 / (10 + 9 - 8), 3 / (4 + 5 - 3)
    assert m["IoU.a"] == pytest.approx(100 * iou_a)
    assert m["IoU.b"] == pytest.approx(100 * iou_b)
    assert math.isnan(m["IoU.c"])
    assert m["mIoU"] == pytest.approx(100 * (iou_a + iou_b) / 2)
    assert m["aAcc"] == pytest.approx(100 * 11 / 14)
    assert m["mAcc"] == pytest.approx(100 * (8 / 10 + 3 / 4) / 2)


def test_class_only_predicted_counts_as_zero_iou() -> None:
    conf = np.array([[5, 5], [0, 0]])  # class 1 predicted but absent from the ground truth
    m = segmentation_metrics(conf, ("a", "b"))
    assert m["IoU.b"] == 0.0
    assert m["mIoU"] == pytest.approx(100 * (5 / 10) / 2)
    assert m["mAcc"] == pytest.approx(50.0)  # class b has no ground truth: left out of mAcc


def test_update_confusion_ignores_255() -> None:
    conf = torch.zeros(3, 3, dtype=torch.int64)
    label = torch.tensor([[0, 1, 255], [2, 2, 1]])
    pred = torch.tensor([[0, 2, 1], [2, 0, 1]])
    update_confusion(conf, pred, label)
    expected = torch.tensor([[1, 0, 0], [0, 1, 1], [1, 0, 1]])
    assert torch.equal(conf, expected)
    assert int(conf.sum()) == 5


def test_wrong_number_of_names_is_an_error() -> None:
    with pytest.raises(ValueError, match="2 class names"):
        segmentation_metrics(np.eye(3), ("a", "b"))
