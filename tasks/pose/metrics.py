"""COCO keypoint AP through pycocotools' COCOeval, for COCO-Keypoints and COCO-WholeBody.

COCOeval matches predictions to ground truth per image by object keypoint similarity,
``OKS = mean_i exp(-d_i^2 / (2 s^2 k_i^2))`` over the labelled keypoints, with ``s^2`` the ground truth's
area and ``k_i = 2 sigma_i``; AP averages precision over OKS thresholds 0.50:0.05:0.95.

COCO-WholeBody is scored as xtcocotools' ``keypoints_body`` / ``_foot`` / ``_face`` / ``_lefthand`` /
``_righthand`` / ``_wholebody`` iou types do (mmpose's ``CocoWholeBodyMetric``): each part is evaluated on its
own keypoints with its slice of the 133 sigmas, and the whole body on all 133 concatenated. pycocotools'
``keypoints`` evaluation is that same computation once the part's points are put in the ``keypoints`` field
and ``params.kpt_oks_sigmas`` is set to the part's sigmas (ground truth with no labelled body keypoint is
ignored, a part without labelled points falls back to the box distance, exactly as in xtcocotools).

Metrics are in percent; an area range with no ground truth gives -1, as COCOeval reports it.
"""

from __future__ import annotations

import contextlib
import copy
import io
from collections.abc import Sequence
from typing import Any

import numpy as np

#: COCOeval's keypoint ``stats`` in order.
STAT_NAMES: tuple[str, ...] = ("AP", "AP50", "AP75", "APM", "APL", "AR", "AR50", "AR75", "ARM", "ARL")
#: What the pose task records for each evaluation.
REPORTED: tuple[str, ...] = ("AP", "AP50", "AP75", "APM", "APL", "AR")


def _to_percent(stats: Sequence[float]) -> dict[str, float]:
    return {name: (float(v) * 100.0 if v >= 0 else -1.0) for name, v in zip(STAT_NAMES, stats, strict=True)}


def oks_eval(
    gt: dict[str, Any], predictions: Sequence[dict[str, Any]], sigmas: np.ndarray
) -> dict[str, float]:
    """COCOeval ``keypoints`` on one keypoint set.

    Args:
        gt: a COCO keypoint json (``images``, ``annotations`` with ``keypoints`` of ``len(sigmas)`` x 3,
            ``categories``).
        predictions: COCO results: ``image_id``, ``category_id``, ``keypoints`` (flat ``[x, y, score] * K``),
            ``score``.
        sigmas: the OKS sigma of each keypoint.

    Returns:
        :data:`STAT_NAMES` -> value in percent (0 for every stat when there are no predictions).
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if not predictions:
        return dict.fromkeys(STAT_NAMES, 0.0)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = copy.deepcopy(gt)
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes([dict(p) for p in predictions])
        evaluator = COCOeval(coco_gt, coco_dt, "keypoints")
        evaluator.params.kpt_oks_sigmas = np.asarray(sigmas, dtype=np.float64)
        evaluator.params.imgIds = sorted(coco_gt.getImgIds())
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return _to_percent(evaluator.stats)


def _select(records: Sequence[dict[str, Any]], fields: Sequence[tuple[str, int]], key: str) -> list[dict]:
    out = []
    for record in records:
        item = dict(record)
        item["keypoints"] = [v for f, _ in fields for v in record[f]] if key == "gt" else record["keypoints"]
        for name, _ in fields:
            if name != "keypoints":
                item.pop(name, None)
        out.append(item)
    return out


def coco_keypoint_metrics(
    gt: dict[str, Any], predictions: Sequence[dict[str, Any]], sigmas: np.ndarray
) -> dict[str, float]:
    """COCO-Keypoints metrics: AP, AP50, AP75, APM, APL, AR (percent)."""
    stats = oks_eval(gt, predictions, sigmas)
    return {name: stats[name] for name in REPORTED}


def wholebody_metrics(
    gt: dict[str, Any],
    predictions: Sequence[dict[str, Any]],
    sigmas: np.ndarray,
    parts: Sequence[tuple[str, int, str]],
) -> dict[str, float]:
    """COCO-WholeBody metrics: ``AP``... of the whole body plus ``<part>_AP`` and ``<part>_AR`` per part.

    Args:
        gt: a COCO-WholeBody json (each annotation has every part's field).
        predictions: COCO results whose ``keypoints`` hold all keypoints (``sum(counts)`` x 3) in part order.
        sigmas: all keypoints' sigmas, in part order.
        parts: ``(name, count, annotation field)`` per part, in keypoint order.
    """
    fields = [(key, count) for _, count, key in parts]
    whole_gt = {**gt, "annotations": _select(gt["annotations"], fields, "gt")}
    metrics = {
        name: value for name, value in oks_eval(whole_gt, predictions, sigmas).items() if name in REPORTED
    }
    start = 0
    for name, count, key in parts:
        part_gt = {**gt, "annotations": _select(gt["annotations"], [(key, count)], "gt")}
        part_pred = []
        for pred in predictions:
            flat = np.asarray(pred["keypoints"], dtype=np.float64).reshape(-1, 3)[start : start + count]
            part_pred.append({**pred, "keypoints": flat.reshape(-1).tolist()})
        stats = oks_eval(part_gt, part_pred, sigmas[start : start + count])
        metrics[f"{name}_AP"] = stats["AP"]
        metrics[f"{name}_AR"] = stats["AR"]
        start += count
    return metrics


def rescore(keypoint_scores: np.ndarray, bbox_score: float, thr: float = 0.2) -> float:
    """mmpose's instance score: box score x mean confidence of the keypoints scoring above ``thr``."""
    above = keypoint_scores[keypoint_scores > thr]
    return float(bbox_score * above.mean()) if len(above) else 0.0
