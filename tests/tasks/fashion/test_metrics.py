"""Box and mask AP: perfect predictions score 100; the wrapper equals raw pycocotools on a perturbed set."""

from __future__ import annotations

import contextlib
import copy
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from saip_bench.tasks.fashion.dataset import decode_segmentation
from saip_bench.tasks.fashion.metrics import instance_ap, mask_to_rle

KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl")


@pytest.fixture(scope="module")
def gt(fashion_root: Path) -> dict[str, Any]:
    return json.loads((fashion_root / "instances_attributes_train2020.json").read_text())


def _results(gt: dict[str, Any], *, noise: float = 0.0, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """One detection per ground-truth instance; with ``noise``, jittered boxes, shifted masks, random scores,
    some wrong classes and some dropped, so that AP lands strictly between 0 and 100."""
    rng = np.random.default_rng(seed)
    sizes = {im["id"]: (im["height"], im["width"]) for im in gt["images"]}
    boxes, masks = [], []
    for ann in gt["annotations"]:
        if noise and rng.random() < 0.15:
            continue
        category = ann["category_id"]
        if noise and rng.random() < 0.1:
            category = int(rng.integers(46))
        x, y, w, h = ann["bbox"]
        mask = decode_segmentation(ann["segmentation"], *sizes[ann["image_id"]])
        if noise:
            x, y = x + rng.normal(0, noise) * w, y + rng.normal(0, noise) * h
            w, h = w * (1 + rng.normal(0, noise)), h * (1 + rng.normal(0, noise))
            mask = np.roll(mask, int(rng.integers(-2, 3)), axis=1)
        score = float(rng.random()) if noise else 1.0
        record = {"image_id": ann["image_id"], "category_id": category, "score": score}
        boxes.append({**record, "bbox": [x, y, max(w, 1.0), max(h, 1.0)]})
        masks.append({**record, "segmentation": mask_to_rle(mask)})
    return boxes, masks


def _raw(gt: dict[str, Any], results: list[dict], iou_type: str) -> list[float]:
    """The reference: pycocotools used directly, as its README shows."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = copy.deepcopy(gt)
        coco.createIndex()
        evaluator = COCOeval(coco, coco.loadRes(copy.deepcopy(results)), iou_type)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return [float(v) for v in evaluator.stats[:6]]


def test_perfect_predictions_score_100(gt: dict[str, Any]) -> None:
    boxes, masks = _results(gt)
    metrics = instance_ap(gt, boxes, masks)
    for key in ("AP", "AP50", "AP75", "AP_mask", "AP50_mask", "AP75_mask"):
        assert metrics[key] == pytest.approx(100.0), key


def test_equals_raw_pycocotools_on_a_perturbed_set(gt: dict[str, Any]) -> None:
    boxes, masks = _results(gt, noise=0.08, seed=1)
    metrics = instance_ap(gt, boxes, masks)
    assert 5.0 < metrics["AP"] < 95.0 and 5.0 < metrics["AP_mask"] < 95.0
    for suffix, results, iou_type in (("", boxes, "bbox"), ("_mask", masks, "segm")):
        for key, ref in zip(KEYS, _raw(gt, results, iou_type), strict=True):
            expected = ref * 100 if ref >= 0 else -1.0
            assert metrics[key + suffix] == pytest.approx(expected, abs=1e-9), key + suffix


def test_no_detections_and_image_subsets(gt: dict[str, Any]) -> None:
    empty = instance_ap(gt, [], [])
    assert empty["AP"] == 0.0 and empty["AP_mask"] == 0.0
    boxes, _ = _results(gt)
    first = gt["images"][0]["id"]
    only_first = [b for b in boxes if b["image_id"] == first]
    # Evaluated on the predicted image alone the score is perfect; over every image the misses count.
    assert instance_ap(gt, only_first, image_ids=[first])["AP"] == pytest.approx(100.0)
    assert instance_ap(gt, only_first)["AP"] < 100.0
    assert "AP_mask" not in instance_ap(gt, only_first, image_ids=[first])
