"""CrowdHuman metrics on hand-made cases with known answers, and against mmdet's port of the official code."""

from __future__ import annotations

import math

import numpy as np
import pytest

from saip_bench.tasks.detection.metrics import (
    ImageDetections,
    average_precision,
    box_ioa,
    box_iou,
    crowdhuman_metrics,
    image_jaccard,
    jaccard_index,
    log_average_miss_rate,
    match_image,
)

GT = np.array([[0, 0, 10, 30], [20, 0, 30, 30], [40, 0, 50, 30], [60, 0, 70, 30]], dtype=float)
IGNORE = np.array([[100, 0, 160, 40]], dtype=float)
SCORES = np.array([0.9, 0.8, 0.7, 0.6])


def _image(dets: np.ndarray, scores: np.ndarray, ignore: np.ndarray = IGNORE) -> ImageDetections:
    return ImageDetections(GT, ignore, dets, scores, size=(100, 200))


def test_iou_and_ioa() -> None:
    a = np.array([[0, 0, 10, 10]], dtype=float)
    b = np.array([[5, 0, 15, 10], [0, 0, 20, 20]], dtype=float)
    assert box_iou(a, b) == pytest.approx(np.array([[50 / 150, 100 / 400]]))
    assert box_ioa(a, b) == pytest.approx(np.array([[0.5, 1.0]]))  # over the first box's own area


def test_perfect_detections() -> None:
    images = [_image(GT, SCORES)]
    # The official AP integrates from the first detection, not from recall 0: 1 - 1/N for perfect results.
    assert average_precision(images) == pytest.approx(0.75)
    assert log_average_miss_rate(images) == 0.0
    assert jaccard_index(images) == pytest.approx(1.0, abs=1e-5)
    many = [_image(GT, SCORES - 0.01 * i) for i in range(25)]  # 100 targets
    assert average_precision(many) == pytest.approx(0.99)


def test_one_miss() -> None:
    images = [_image(GT[:3], SCORES[:3])]
    assert average_precision(images) == pytest.approx(0.5)  # recall 1/4 .. 3/4 at precision 1
    assert log_average_miss_rate(images) == pytest.approx(0.25)  # no false positive: miss rate 1/4 at all 9
    assert jaccard_index(images) == pytest.approx(3 / 4, abs=1e-5)


def test_false_positive_on_an_ignore_region_is_neither_tp_nor_fp() -> None:
    fp = np.array([[110, 5, 130, 35]], dtype=float)  # inside the ignore region (IoA 1)
    dets = np.vstack([fp, GT])
    scores = np.concatenate([[0.95], SCORES])
    kept_scores, is_tp = match_image(_image(dets, scores))
    assert kept_scores.tolist() == SCORES.tolist() and is_tp.all()
    assert crowdhuman_metrics([_image(dets, scores)]) == pytest.approx(
        crowdhuman_metrics([_image(GT, SCORES)])
    )

    # The same detection without the ignore region: a false positive ranked first.
    outside = [_image(dets, scores, ignore=np.zeros((0, 4)))]
    precision = np.array([0, 1 / 2, 2 / 3, 3 / 4, 4 / 5])
    recall = np.array([0, 0.25, 0.5, 0.75, 1.0])
    assert average_precision(outside) == pytest.approx(
        np.sum(np.diff(recall) * (precision[1:] + precision[:-1]) / 2)
    )
    assert log_average_miss_rate(outside) == pytest.approx(1.0)  # FPPI 1 from the first detection on
    assert jaccard_index(outside) == pytest.approx(4 / 5, abs=1e-5)


def test_ioa_at_half_is_not_ignored_and_ignore_absorbs_many() -> None:
    half = np.array([[130, 0, 190, 40]], dtype=float)  # IoA exactly 0.5: the official test is strict (>)
    _, is_tp = match_image(_image(half, np.array([0.5])))
    assert is_tp.tolist() == [False]
    inside = np.repeat(np.array([[105, 0, 150, 40]], dtype=float), 3, axis=0)
    scores, _ = match_image(_image(inside, np.array([0.9, 0.8, 0.7])))
    assert len(scores) == 0


def test_greedy_matching_by_score_and_duplicates() -> None:
    dup = np.vstack([GT[:1], GT[:1] + [1, 0, 1, 0]])  # two detections on one person
    _, is_tp = match_image(_image(dup, np.array([0.6, 0.9])))
    assert is_tp.tolist() == [True, False]  # the higher score takes the person, the duplicate is a FP
    miss = np.array([[0, 0, 10, 12]], dtype=float)  # IoU 0.4 with the first person
    _, is_tp = match_image(_image(miss, np.array([0.9])))
    assert is_tp.tolist() == [False]


def test_ji_uses_score_threshold_and_ignores_unmatched_targets_in_ignore_regions() -> None:
    dets = np.vstack([GT, [[0, 50, 10, 80]]])
    scores = np.array([0.9, 0.9, 0.9, 0.9, 0.05])  # a low-score false positive
    ratio, m, n = image_jaccard(_image(dets, scores), 0.0)
    assert (m, n) == (4, 5) and ratio == pytest.approx(4 / 5, abs=1e-5)
    assert jaccard_index([_image(dets, scores)]) == pytest.approx(1.0, abs=1e-5)  # best threshold drops it
    hidden = ImageDetections(np.vstack([GT, [[110, 5, 130, 35]]]), IGNORE, GT, SCORES, size=(100, 200))
    ratio, m, n = image_jaccard(hidden, 0.0)
    assert (m, n) == (4, 4) and ratio == pytest.approx(1.0, abs=1e-5)


def test_no_detections() -> None:
    images = [_image(np.zeros((0, 4)), np.zeros(0))]
    assert crowdhuman_metrics(images) == {"AP": 0.0, "MR-2": 100.0, "JI": 0.0}


def test_boxes_are_clipped_to_the_image() -> None:
    gt = np.array([[-20, 0, 10, 30]], dtype=float)  # half outside: clipped to [0, 0, 10, 30]
    image = ImageDetections(
        gt, np.zeros((0, 4)), np.array([[0, 0, 10, 30]], dtype=float), np.array([0.9]), (50, 50)
    )
    assert match_image(image)[1].tolist() == [True]


def _random_images(rng: np.random.Generator, count: int) -> list[ImageDetections]:
    images = []
    for _ in range(count):
        g = int(rng.integers(0, 8))
        xy = rng.uniform(0, 150, size=(g, 2))
        gt = np.hstack([xy, xy + rng.uniform(10, 60, size=(g, 2))])
        jitter = rng.normal(0, 4, size=gt.shape)
        dets = np.vstack(
            [
                gt + jitter,
                rng.uniform(0, 150, size=(int(rng.integers(0, 5)), 2)).repeat(2, 1) + [0, 0, 30, 40],
            ]
        )
        dets = dets[rng.permutation(len(dets))]
        ign = np.array([[150, 150, 200, 200]], dtype=float) if rng.random() < 0.5 else np.zeros((0, 4))
        if len(ign):
            dets = np.vstack([dets, [[155, 160, 190, 195]]])
        images.append(
            ImageDetections(gt, ign, dets, rng.permutation(len(dets)) / len(dets) + 0.01, (200, 200))
        )
    return images


def test_ap_and_mr_match_mmdet_port_of_the_official_code() -> None:
    """mmdet's CrowdHumanMetric is a port of CrowdDet's evaluation; drive its matching and curves directly."""
    from types import SimpleNamespace

    from saip_bench.mm import setup_mm

    setup_mm("mmdet")
    from mmdet.evaluation.metrics.crowdhuman_metric import CrowdHumanMetric, Image

    images = _random_images(np.random.default_rng(0), 12)
    score_list, gt_num = [], 0
    for i, image in enumerate(images):
        ref = Image(0)
        ref.ID = str(i)
        tags = np.concatenate([np.ones(len(image.gt_boxes)), -np.ones(len(image.ignore_boxes))])
        ref.gt_boxes = np.hstack([np.vstack([image.gt_boxes, image.ignore_boxes]), tags[:, None]])
        ref.dt_boxes = np.hstack([image.det_boxes, image.det_scores[:, None]])
        ref.width = ref.height = 200
        ref.clip_all_boader()
        score_list.extend(ref.compare_caltech(0.5))
        gt_num += len(image.gt_boxes)
    score_list.sort(key=lambda x: x[0][-1], reverse=True)
    expected_ap = CrowdHumanMetric.eval_ap(score_list, gt_num, len(images))
    expected_mr = CrowdHumanMetric.eval_mr(
        SimpleNamespace(mr_ref="CALTECH_-2"), score_list, gt_num, len(images)
    )
    assert average_precision(images) == pytest.approx(expected_ap, abs=1e-9)
    assert log_average_miss_rate(images) == pytest.approx(expected_mr, abs=1e-9)
    assert 0 < expected_ap < 1 and not math.isnan(expected_mr)
