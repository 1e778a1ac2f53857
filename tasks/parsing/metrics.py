"""Segmentation metrics from one confusion matrix, as mmsegmentation's ``IoUMetric`` computes them.

The confusion matrix ``conf[g, p]`` counts pixels of ground-truth class ``g`` predicted as ``p``; pixels
labelled ``ignore_index`` (255) are left out. From it:

- ``aAcc``: pixel accuracy, ``trace(conf) / conf.sum()``;
- ``IoU`` of class ``c``: ``conf[c, c] / (conf[c, :].sum() + conf[:, c].sum() - conf[c, c])``;
- ``Acc`` of class ``c``: ``conf[c, c] / conf[c, :].sum()``;
- ``mIoU`` / ``mAcc``: the means over classes. A class absent from both the ground truth and the prediction
  has IoU 0/0 = NaN and is excluded from the mean (``nanmean``), as mmseg does; a class absent from the ground
  truth only has accuracy NaN and is likewise excluded from ``mAcc``.

All values are in percent. The matrix is accumulated on the model's device; under ``torch.distributed`` it is
summed over the processes before the metrics are read.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

IGNORE_INDEX = 255


def update_confusion(
    conf: torch.Tensor, pred: torch.Tensor, label: torch.Tensor, *, ignore_index: int = IGNORE_INDEX
) -> torch.Tensor:
    """Add one batch's pixels to ``conf`` (``(C, C)`` int64, in place) and return it.

    Args:
        conf: the running matrix, rows = ground truth, columns = prediction.
        pred: predicted class ids, any shape, same as ``label``.
        label: ground-truth ids in ``0..C-1`` or ``ignore_index``.
        ignore_index: label value left out.
    """
    num_classes = conf.shape[0]
    keep = label != ignore_index
    gt = label[keep].long()
    pr = pred[keep].long()
    conf += torch.bincount(gt * num_classes + pr, minlength=num_classes**2).view(num_classes, num_classes)
    return conf


def all_reduce_confusion(conf: torch.Tensor) -> torch.Tensor:
    """Sum ``conf`` over the processes of an initialised process group (a no-op otherwise)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.all_reduce(conf)
    return conf


def segmentation_metrics(conf: np.ndarray | torch.Tensor, class_names: Sequence[str]) -> dict[str, float]:
    """``mIoU``, ``aAcc``, ``mAcc`` and ``IoU.<name>`` per class, in percent (see module docstring).

    Args:
        conf: ``(C, C)`` confusion matrix, rows = ground truth, columns = prediction.
        class_names: the ``C`` class names, in id order.

    Returns:
        Metric name -> value; a per-class IoU of a class absent from ground truth and prediction is NaN.
    """
    conf = conf.detach().cpu().numpy() if isinstance(conf, torch.Tensor) else np.asarray(conf)
    conf = conf.astype(np.float64)
    if conf.shape != (len(class_names), len(class_names)):
        raise ValueError(f"confusion matrix {conf.shape} does not fit {len(class_names)} class names")
    tp = np.diag(conf)
    gt = conf.sum(axis=1)
    pred = conf.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = tp / (gt + pred - tp)
        acc = tp / gt
    total = conf.sum()
    metrics = {
        "mIoU": 100.0 * float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan"),
        "aAcc": 100.0 * float(tp.sum() / total) if total > 0 else float("nan"),
        "mAcc": 100.0 * float(np.nanmean(acc)) if np.isfinite(acc).any() else float("nan"),
    }
    for name, value in zip(class_names, iou, strict=True):
        metrics[f"IoU.{name}"] = 100.0 * float(value)
    return metrics
