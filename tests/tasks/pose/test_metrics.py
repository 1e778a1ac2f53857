"""COCO keypoint metrics: perfect predictions give AP 100, perturbed ones what pycocotools gives."""

from __future__ import annotations

import contextlib
import copy
import io
import json
from pathlib import Path

import numpy as np
import pytest

from saip_bench.tasks.pose.meta import WHOLEBODY_PARTS, keypoint_meta
from saip_bench.tasks.pose.metrics import coco_keypoint_metrics, oks_eval, rescore, wholebody_metrics


def _gt(num_keypoints: int, wholebody: bool = False, persons: int = 6, seed: int = 0) -> dict:
    """Hand-made ground truth: ``persons`` people over 3 images, varied sizes, some keypoints unlabelled."""
    rng = np.random.default_rng(seed)
    images = [{"id": i + 1, "file_name": f"{i + 1:012d}.jpg", "width": 640, "height": 480} for i in range(3)]
    annotations = []
    for j in range(persons):
        x, y = rng.uniform(0, 300), rng.uniform(0, 150)
        w, h = rng.uniform(40, 200), rng.uniform(100, 300)
        points = np.stack([rng.uniform(x, x + w, num_keypoints), rng.uniform(y, y + h, num_keypoints),
                           rng.choice([0, 1, 2], num_keypoints, p=[0.2, 0.3, 0.5])], axis=1)  # fmt: skip
        points[points[:, 2] == 0] = 0
        ann = {"id": j + 1, "image_id": j % 3 + 1, "category_id": 1, "iscrowd": 0, "bbox": [x, y, w, h],
               "area": w * h * 0.6, "num_keypoints": int((points[:17, 2] > 0).sum())}  # fmt: skip
        start = 0
        for _, count, key in WHOLEBODY_PARTS if wholebody else (("body", 17, "keypoints"),):
            ann[key] = points[start : start + count].reshape(-1).tolist()
            start += count
        annotations.append(ann)
    return {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "person"}]}


def _predictions(gt: dict, parts: tuple, noise: float, seed: int = 1) -> list[dict]:
    rng = np.random.default_rng(seed)
    preds = []
    for ann in gt["annotations"]:
        points = np.concatenate([np.asarray(ann[key], float).reshape(-1, 3) for _, _, key in parts])
        points[:, :2] += rng.normal(0, noise, size=(len(points), 2)) * np.sqrt(ann["area"]) * 0.05
        points[:, 2] = 1.0
        preds.append({"image_id": ann["image_id"], "category_id": 1, "keypoints": points.reshape(-1).tolist(),
                      "score": float(rng.uniform(0.5, 1.0))})  # fmt: skip
    return preds


BODY = (("body", 17, "keypoints"),)


def test_perfect_predictions_give_ap_100() -> None:
    gt = _gt(17)
    metrics = coco_keypoint_metrics(
        gt, _predictions(gt, BODY, noise=0.0), keypoint_meta("coco_keypoints").sigmas
    )
    assert set(metrics) == {"AP", "AP50", "AP75", "APM", "APL", "AR"}
    assert metrics["AP"] == pytest.approx(100.0) and metrics["AR"] == pytest.approx(100.0)


def test_perturbed_predictions_match_pycocotools_on_files(tmp_path: Path) -> None:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt = _gt(17, persons=9, seed=3)
    preds = _predictions(gt, BODY, noise=1.0)
    ours = oks_eval(gt, preds, keypoint_meta("coco_keypoints").sigmas)
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "dt.json").write_text(json.dumps(preds))
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(tmp_path / "gt.json"))
        reference = COCOeval(
            coco, coco.loadRes(str(tmp_path / "dt.json")), "keypoints"
        )  # default COCO sigmas
        reference.evaluate()
        reference.accumulate()
        reference.summarize()
    assert 5.0 < ours["AP"] < 95.0  # really perturbed, not trivially 0 or 100
    assert ours["AP"] == pytest.approx(100 * reference.stats[0])
    assert ours["AR"] == pytest.approx(100 * reference.stats[5])
    assert ours["AP50"] == pytest.approx(100 * reference.stats[1])


def test_wholebody_parts_are_scored_on_their_own_keypoints() -> None:
    meta = keypoint_meta("coco_wholebody")
    gt = _gt(133, wholebody=True)
    perfect = wholebody_metrics(gt, _predictions(gt, WHOLEBODY_PARTS, 0.0), meta.sigmas, WHOLEBODY_PARTS)
    for name, _, _ in WHOLEBODY_PARTS:
        assert perfect[f"{name}_AP"] == pytest.approx(100.0), name
    assert perfect["AP"] == pytest.approx(100.0)

    preds = _predictions(gt, WHOLEBODY_PARTS, 0.0)
    for pred in preds:  # move only the face points far away
        points = np.asarray(pred["keypoints"]).reshape(-1, 3)
        points[23:91, :2] += 80.0
        pred["keypoints"] = points.reshape(-1).tolist()
    bad_face = wholebody_metrics(gt, preds, meta.sigmas, WHOLEBODY_PARTS)
    assert bad_face["face_AP"] < 20.0
    assert bad_face["body_AP"] == pytest.approx(100.0) and bad_face["lefthand_AP"] == pytest.approx(100.0)
    assert bad_face["AP"] < 100.0


def test_body_part_of_wholebody_equals_coco_keypoints_metric() -> None:
    meta = keypoint_meta("coco_wholebody")
    gt = _gt(133, wholebody=True, seed=5)
    preds = _predictions(gt, WHOLEBODY_PARTS, 1.0)
    whole = wholebody_metrics(gt, preds, meta.sigmas, WHOLEBODY_PARTS)
    body_gt = copy.deepcopy(gt)
    body_preds = [{**p, "keypoints": p["keypoints"][: 17 * 3]} for p in preds]
    body = coco_keypoint_metrics(body_gt, body_preds, meta.sigmas[:17])
    assert whole["body_AP"] == pytest.approx(body["AP"])


def test_no_predictions_and_rescoring() -> None:
    assert oks_eval(_gt(17), [], keypoint_meta("coco_keypoints").sigmas)["AP"] == 0.0
    assert rescore(np.array([0.1, 0.5, 0.9]), 0.8) == pytest.approx(0.8 * 0.7)
    assert rescore(np.array([0.1, 0.05]), 1.0) == 0.0
