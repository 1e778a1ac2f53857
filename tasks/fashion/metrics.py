"""Box and mask AP of instance predictions by COCOeval (pycocotools), as the Fashionpedia paper reports them.

Ground truth is the split's COCO json (polygon or RLE segmentations); predictions are COCO result records:
``{"image_id", "category_id", "score", "bbox": [x, y, w, h]}`` for boxes and the same with
``"segmentation"`` (an RLE dict) for masks. Box and mask results are evaluated as two result sets, as mmdet's
CocoMetric does, so each uses its own area (box area for ``bbox``, mask area for ``segm``).

Keys (percent): ``AP`` (box AP@[.5:.95], the primary metric), ``AP50``, ``AP75``, ``APs``, ``APm``, ``APl``,
``AP_mask``, ``AP50_mask``, ``AP75_mask``, ``APs_mask``, ``APm_mask``, ``APl_mask``. A value is -1.0 where
COCOeval has nothing to score (no ground truth in that area range), as pycocotools reports it.
"""

from __future__ import annotations

import contextlib
import copy
import io
from collections.abc import Sequence
from typing import Any

import numpy as np

#: COCOeval ``stats`` index -> metric name suffix.
_STATS = ("AP", "AP50", "AP75", "APs", "APm", "APl")


def _coco(gt: dict[str, Any]) -> Any:
    from pycocotools.coco import COCO

    coco = COCO()
    coco.dataset = copy.deepcopy(gt)
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress; the library never does
        coco.createIndex()
    return coco


def _stats(
    gt_coco: Any, results: list[dict[str, Any]], iou_type: str, image_ids: Sequence[int]
) -> np.ndarray:
    from pycocotools.cocoeval import COCOeval

    if not results:  # COCO.loadRes cannot take an empty list: nothing detected scores 0 where GT exists
        return np.array([0.0] * len(_STATS))
    with contextlib.redirect_stdout(io.StringIO()):
        dt = gt_coco.loadRes(copy.deepcopy(results))
        evaluator = COCOeval(gt_coco, dt, iou_type)
        evaluator.params.imgIds = list(image_ids)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return np.asarray(evaluator.stats[: len(_STATS)], dtype=np.float64)


def _percent(value: float) -> float:
    return float(value) * 100.0 if value >= 0 else -1.0


def instance_ap(
    gt: dict[str, Any],
    box_results: list[dict[str, Any]],
    mask_results: list[dict[str, Any]] | None = None,
    *,
    image_ids: Sequence[int] | None = None,
) -> dict[str, float]:
    """COCO box (and mask) AP in percent.

    Args:
        gt: a COCO instances dict (``images``, ``annotations``, ``categories``; extra keys are ignored).
        box_results: COCO box result records (``image_id``, ``category_id``, ``bbox`` xywh, ``score``).
        mask_results: COCO mask result records (``segmentation`` as RLE); None to skip mask AP.
        image_ids: the images to evaluate (default: every image of ``gt``); an evaluation on a subset must
            name it so that unpredicted images do not count as misses.

    Returns:
        The metric dict described in the module docstring (mask keys only with ``mask_results``).
    """
    coco = _coco(gt)
    ids = list(image_ids) if image_ids is not None else sorted(coco.getImgIds())
    metrics = {
        name: _percent(v) for name, v in zip(_STATS, _stats(coco, box_results, "bbox", ids), strict=True)
    }
    if mask_results is not None:
        stats = _stats(coco, mask_results, "segm", ids)
        metrics.update({f"{name}_mask": _percent(v) for name, v in zip(_STATS, stats, strict=True)})
    return metrics


def mask_to_rle(mask: np.ndarray) -> dict[str, Any]:
    """A binary ``(H, W)`` mask as a COCO compressed RLE with a JSON-ready string ``counts``."""
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}
