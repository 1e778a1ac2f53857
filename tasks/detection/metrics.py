"""CrowdHuman's official metrics on full-body boxes: AP at IoU 0.5, log-average miss rate MR^-2, and JI.

These follow the evaluation code released with CrowdDet (``lib/evaluate/compute_APMR.py``,
``APMRToolkits/image.py`` and ``compute_JI.py``; mmdet's ``CrowdHumanMetric`` is a port of it):

- **Matching** (AP and MR), per image, Caltech style: detections in descending score order; each takes the
  unmatched target with the highest IoU *above* 0.5 (strictly, as the official code compares). A detection
  with no such target is tested against the ignore regions by IoA (intersection over the detection's own
  area) above 0.5: if one matches, the detection is dropped (neither true nor false positive; ignore regions
  can absorb any number of detections); otherwise it is a false positive.
- **AP**: all images' kept detections sorted by score; precision/recall after each one; the area under that
  curve by the trapezoid rule between consecutive points (the official code starts at the first detection,
  not at recall 0).
- **MR^-2**: miss rate against false positives per image (FPPI); at each of the 9 reference FPPIs
  ``10 ** linspace(-2, 0, 9)`` take the miss rate of the first point whose FPPI reaches it (the last point if
  none does); MR^-2 = exp(mean(log(those miss rates))). Lower is better.
- **JI**: per image, detections with score above a threshold; a maximum-weight one-to-one matching between
  detections and targets on IoU (edges only at IoU >= 0.5); unmatched detections and unmatched targets
  that lie in an ignore region (IoA above 0.5) are removed from the counts; the image's ratio is
  ``k / (m + n - k)`` (k matches, m targets, n detections). JI is the mean ratio over images where
  ``m`` or ``n`` is non-zero, maximised over the thresholds 0.0, 0.1, ..., 0.9.

Boxes are ``(N, 4)`` ``x1, y1, x2, y2`` in the original image's pixels; with an image size they are clipped
to the image first, as the official code does. Every function returns fractions; :func:`crowdhuman_metrics`
gives the reported percentages.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

IOU_THRESHOLD = 0.5
#: The Caltech reference points of MR^-2: 9 FPPI values log-spaced in [1e-2, 1].
MR_REFERENCE_FPPI: np.ndarray = np.logspace(-2.0, 0.0, 9)
JI_SCORE_THRESHOLDS: tuple[float, ...] = tuple(0.1 * i for i in range(10))


@dataclass
class ImageDetections:
    """One image's ground truth and detections.

    Attributes:
        gt_boxes: ``(G, 4)`` target boxes.
        ignore_boxes: ``(I, 4)`` ignore regions.
        det_boxes: ``(D, 4)`` detections.
        det_scores: ``(D,)`` detection scores.
        size: ``(H, W)`` of the image, to clip boxes as the official code does; None = no clipping.
    """

    gt_boxes: np.ndarray
    ignore_boxes: np.ndarray
    det_boxes: np.ndarray
    det_scores: np.ndarray
    size: tuple[int, int] | None = None

    def clipped(self) -> ImageDetections:
        """A copy with every box clipped to the image (x1, y1 to [0, W-1] / [0, H-1]; x2, y2 to [0, W/H])."""
        boxes = [_as_boxes(b) for b in (self.gt_boxes, self.ignore_boxes, self.det_boxes)]
        if self.size is not None:
            height, width = self.size
            for b in boxes:
                b[:, 0] = np.clip(b[:, 0], 0, width - 1)
                b[:, 1] = np.clip(b[:, 1], 0, height - 1)
                b[:, 2] = np.clip(b[:, 2], 0, width)
                b[:, 3] = np.clip(b[:, 3], 0, height)
        scores = np.asarray(self.det_scores, dtype=np.float64).reshape(-1)
        return ImageDetections(*boxes, scores, self.size)


def _as_boxes(boxes: np.ndarray) -> np.ndarray:
    return np.array(boxes, dtype=np.float64).reshape(-1, 4)


def _area(boxes: np.ndarray) -> np.ndarray:
    return np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)


def _intersection(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    w = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    h = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    return np.clip(w, 0, None) * np.clip(h, 0, None)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(len(a), len(b))`` intersection over union."""
    a, b = _as_boxes(a), _as_boxes(b)
    inter = _intersection(a, b)
    union = _area(a)[:, None] + _area(b)[None, :] - inter
    return inter / np.maximum(union, 1e-6)


def box_ioa(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(len(a), len(b))`` intersection over the area of each ``a`` box (IoA, mmdet's "iof")."""
    a, b = _as_boxes(a), _as_boxes(b)
    return _intersection(a, b) / np.maximum(_area(a)[:, None], 1e-6)


def match_image(
    image: ImageDetections, iou_threshold: float = IOU_THRESHOLD
) -> tuple[np.ndarray, np.ndarray]:
    """Caltech matching of one image (see module docstring).

    Returns:
        ``(scores, is_tp)`` of the detections that count (those matched to an ignore region are dropped),
        in descending score order.
    """
    image = image.clipped()
    order = np.argsort(-image.det_scores, kind="stable")
    boxes, scores = image.det_boxes[order], image.det_scores[order]
    iou = box_iou(boxes, image.gt_boxes)
    ioa_ignore = box_ioa(boxes, image.ignore_boxes)
    taken = np.zeros(len(image.gt_boxes), dtype=bool)
    keep, is_tp = [], []
    for i in range(len(boxes)):
        candidates = np.where(taken, -1.0, iou[i]) if len(taken) else np.zeros(0)
        if len(candidates) and candidates.max() > iou_threshold:
            taken[int(candidates.argmax())] = True
            keep.append(i)
            is_tp.append(True)
        elif ioa_ignore.shape[1] and ioa_ignore[i].max() > iou_threshold:
            continue
        else:
            keep.append(i)
            is_tp.append(False)
    return scores[keep], np.asarray(is_tp, dtype=bool)


def _curve(images: Sequence[ImageDetections], iou_threshold: float) -> tuple[np.ndarray, np.ndarray, int]:
    """Cumulative (tp, fp) over every image's kept detections by descending score, and the target count."""
    scores, flags = [], []
    num_gt = 0
    for image in images:
        s, tp = match_image(image, iou_threshold)
        scores.append(s)
        flags.append(tp)
        num_gt += len(_as_boxes(image.gt_boxes))
    all_scores = np.concatenate(scores) if scores else np.zeros(0)
    all_tp = np.concatenate(flags) if flags else np.zeros(0, dtype=bool)
    order = np.argsort(-all_scores, kind="stable")
    all_tp = all_tp[order]
    return np.cumsum(all_tp), np.cumsum(~all_tp), num_gt


def average_precision(images: Sequence[ImageDetections], iou_threshold: float = IOU_THRESHOLD) -> float:
    """CrowdHuman AP (fraction, 0..1) over ``images``; 0 without detections or targets."""
    tp, fp, num_gt = _curve(images, iou_threshold)
    if len(tp) == 0 or num_gt == 0:
        return 0.0
    recall = tp / num_gt
    precision = tp / (tp + fp)
    return float(np.sum(np.diff(recall) * (precision[1:] + precision[:-1]) / 2.0))


def log_average_miss_rate(images: Sequence[ImageDetections], iou_threshold: float = IOU_THRESHOLD) -> float:
    """MR^-2 (fraction, 0..1; lower is better); 1.0 when nothing is detected."""
    tp, fp, num_gt = _curve(images, iou_threshold)
    if len(tp) == 0 or num_gt == 0:
        return 1.0
    fppi = fp / max(1, len(images))
    miss = 1.0 - tp / num_gt
    picks = []
    for ref in MR_REFERENCE_FPPI:
        reached = np.flatnonzero(fppi >= ref)
        picks.append(miss[reached[0]] if len(reached) else miss[-1])
    with np.errstate(divide="ignore"):
        return float(np.exp(np.mean(np.log(np.asarray(picks)))))


def _max_weight_matching(iou: np.ndarray, iou_threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Matched ``(rows, cols)`` of a maximum-weight one-to-one matching on IoU, edges at IoU >= threshold."""
    from scipy.optimize import linear_sum_assignment

    weights = np.where(iou >= iou_threshold, iou, 0.0)
    rows, cols = linear_sum_assignment(weights, maximize=True)
    valid = weights[rows, cols] > 0
    return rows[valid], cols[valid]


def image_jaccard(
    image: ImageDetections, score_threshold: float, iou_threshold: float = IOU_THRESHOLD
) -> tuple[float, int, int]:
    """One image's JI ratio ``k / (m + n - k)`` at a score threshold, with its ``m`` and ``n``."""
    image = image.clipped()
    keep = image.det_scores > score_threshold
    dets, gts, ignore = image.det_boxes[keep], image.gt_boxes, image.ignore_boxes
    det_matched = np.zeros(len(dets), dtype=bool)
    gt_matched = np.zeros(len(gts), dtype=bool)
    k = 0
    if len(dets) and len(gts):
        rows, cols = _max_weight_matching(box_iou(dets, gts), iou_threshold)
        det_matched[rows] = True
        gt_matched[cols] = True
        k = len(rows)

    def in_ignore(boxes: np.ndarray) -> int:
        if not len(boxes) or not len(ignore):
            return 0
        return int((box_ioa(boxes, ignore).max(axis=1) > iou_threshold).sum())

    m = len(gts) - in_ignore(gts[~gt_matched])
    n = len(dets) - in_ignore(dets[~det_matched])
    return k / (m + n - k + 1e-6), m, n


def jaccard_index(
    images: Sequence[ImageDetections],
    score_thresholds: Sequence[float] = JI_SCORE_THRESHOLDS,
    iou_threshold: float = IOU_THRESHOLD,
) -> float:
    """CrowdHuman JI (fraction, 0..1): the best over ``score_thresholds`` of the mean per-image ratio."""
    best = 0.0
    for threshold in score_thresholds:
        results = [image_jaccard(image, threshold, iou_threshold) for image in images]
        counted = sum(1 for _, m, n in results if m or n)
        if counted:
            best = max(best, sum(r for r, _, _ in results) / counted)
    return float(best)


def crowdhuman_metrics(images: Sequence[ImageDetections]) -> dict[str, float]:
    """``{"AP", "MR-2", "JI"}`` in percent, as CrowdHuman results are reported."""
    return {
        "AP": 100.0 * average_precision(images),
        "MR-2": 100.0 * log_average_miss_rate(images),
        "JI": 100.0 * jaccard_index(images),
    }
