"""Round trips through the pose task's data, target and prediction paths, with no training involved.

A perfect model is simulated by making the head return the codec's own target heatmaps of each eval crop:
decoding them and mapping the keypoints back to the image must land on the ground truth, and the whole
predict -> COCO results -> COCOeval path must then score 100 AP (body and whole body for COCO-WholeBody).
The other parts stay below 100 even so, by the metric's own rule (pycocotools / xtcocotools): a person
whose part has no labelled point is scored by the distance of the prediction to its box, so any prediction
inside that box has OKS 1 with it, ties with its own person's OKS 1, and the greedy matching (the last
maximum wins) can hand the prediction to the unlabelled person; the synthetic scenes overlap people a lot.
Unlabelled keypoints have all-zero target heatmaps, which UDP decodes to NaN: the adapter must neutralise
those, or COCOeval's matching lets a NaN OKS steal another person's ground truth (it did: AP 96.5).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from saip_bench.backbones import load_backbone
from saip_bench.datasets import DATASETS
from saip_bench.tasks.pose.adapter import predict_keypoints, score_predictions
from saip_bench.tasks.pose.dataset import PoseCrops
from saip_bench.tasks.pose.meta import WHOLEBODY_PARTS, keypoint_meta
from saip_bench.tasks.pose.model import build_pose_model
from saip_bench.tasks.pose.transforms import box_to_center_scale, transform_points, udp_matrix

SIZE = (128, 96)


def _targets(split, meta, codec, *, flipped: bool) -> torch.Tensor:
    """The codec's heatmaps of every eval crop (of the mirrored crop when ``flipped``)."""
    height, width = SIZE
    flip = list(meta.flip_indices)
    maps = []
    for inst in split.instances:
        center, scale = box_to_center_scale(inst.bbox, width / height)
        points = transform_points(inst.keypoints[:, :2], udp_matrix(center, scale, 0.0, (width, height)))
        visible = (inst.keypoints[:, 2] > 0).astype(np.float32)
        if flipped:
            points = np.stack([(width - 1) - points[:, 0], points[:, 1]], axis=1)[flip]
            visible = visible[flip]
        maps.append(codec.encode(points[None].astype(np.float32), visible[None])["heatmaps"])
    return torch.from_numpy(np.stack(maps)).float()


def _perfect_predictions(dataset: str, root: Path, flip_test: bool):
    meta = keypoint_meta(dataset)
    split = DATASETS.get(dataset).load(root, "val")
    crops = PoseCrops(split.instances, SIZE, meta.flip_indices, train=False)
    codec = PoseCrops(split.instances, SIZE, meta.flip_indices, train=True).codec
    targets = _targets(split, meta, codec, flipped=False)
    flipped = _targets(split, meta, codec, flipped=True)
    model = build_pose_model(
        load_backbone("random:test_vit", img_size=SIZE), meta.num_keypoints, SIZE, flip_test=flip_test
    ).eval()
    calls = []

    def perfect_head(feats):  # the flip test calls the head on the crop, then on the mirrored crop
        calls.append(1)
        return flipped if flip_test and len(calls) % 2 == 0 else targets

    model.head.forward = perfect_head
    loader = DataLoader(crops, batch_size=len(crops))
    with np.errstate(divide="ignore", invalid="ignore"):  # empty target maps of unlabelled points
        points, scores = predict_keypoints(
            model, loader, img_size=SIZE, meta=meta, device=torch.device("cpu")
        )
    return meta, split, points, scores


@pytest.mark.parametrize("flip_test", [False, True])
def test_decoded_targets_land_on_the_ground_truth(keypoints_master: Path, flip_test: bool) -> None:
    meta, split, points, _ = _perfect_predictions("coco_keypoints", keypoints_master, flip_test)
    truth = np.stack([inst.keypoints for inst in split.instances])
    height, width = SIZE
    inside = []
    for inst in split.instances:  # labelled points inside the crop have a target peak
        center, scale = box_to_center_scale(inst.bbox, width / height)
        crop = transform_points(inst.keypoints[:, :2], udp_matrix(center, scale, 0.0, (width, height)))
        inside.append(
            (inst.keypoints[:, 2] > 0)
            & (crop[:, 0] >= 0) & (crop[:, 0] <= width - 1) & (crop[:, 1] >= 0) & (crop[:, 1] <= height - 1)
        )  # fmt: skip
    inside = np.stack(inside)
    assert inside.sum() > 20
    error = np.linalg.norm(points - truth[:, :, :2], axis=2)[inside]
    assert error.max() < 0.5, error.max()  # pixels in the image


def test_perfect_heatmaps_score_100_ap(keypoints_master: Path) -> None:
    meta, split, points, scores = _perfect_predictions("coco_keypoints", keypoints_master, True)
    metrics = score_predictions("coco_keypoints", split, split.instances, points, scores, meta)
    assert metrics["AP"] == pytest.approx(100.0), metrics


def test_perfect_wholebody_heatmaps_score_100_and_every_part_high(wholebody_master: Path) -> None:
    meta, split, points, scores = _perfect_predictions("coco_wholebody", wholebody_master, True)
    metrics = score_predictions("coco_wholebody", split, split.instances, points, scores, meta)
    assert metrics["AP"] == pytest.approx(100.0) and metrics["body_AP"] == pytest.approx(100.0), metrics
    for key in [f"{name}_AP" for name, _, _ in WHOLEBODY_PARTS]:
        assert metrics[key] > 50.0, (key, metrics)


@pytest.mark.parametrize("dataset", ["coco_keypoints", "coco_wholebody"])
def test_flip_indices_are_a_left_right_involution(dataset: str) -> None:
    meta = keypoint_meta(dataset)
    flip = np.asarray(meta.flip_indices)
    assert np.array_equal(flip[flip], np.arange(meta.num_keypoints))
    if dataset == "coco_keypoints":
        for i, j in enumerate(flip):
            a, b = meta.names[i], meta.names[j]
            assert a == b if i == j else a.replace("left", "right") == b or a.replace("right", "left") == b
        return
    # COCO-WholeBody: the body's and feet's pairs swap sides, the face maps onto itself, each hand point
    # onto the same point of the other hand.
    starts = np.cumsum([0] + [count for _, count, _ in WHOLEBODY_PARTS])
    part = {name: np.arange(starts[k], starts[k + 1]) for k, (name, _, _) in enumerate(WHOLEBODY_PARTS)}
    assert np.array_equal(flip[:17], keypoint_meta("coco_keypoints").flip_indices)
    assert set(flip[part["foot"]]) == set(part["foot"]) and not np.any(flip[part["foot"]] == part["foot"])
    assert set(flip[part["face"]]) == set(part["face"])
    assert np.array_equal(flip[part["lefthand"]], part["righthand"])
