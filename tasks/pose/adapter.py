"""The pose task for ``saip evaluate``: COCO-Keypoints and COCO-WholeBody, top-down, through mmpose.

Protocols: ``finetune`` trains backbone + head (layer-wise lr decay on the backbone's ``blocks.N``);
``linear`` freezes the backbone and trains only the neck + head. Both train through the task template
(:class:`saip_bench.evaluate.task.Task`) and the engine, and evaluate with the flip test on ground-truth
boxes, or on detected boxes when ``eval.bbox_file`` names a COCO detection-results json.

The recipe keys this task reads, their defaults and meanings are in ``configs/evaluate/defaults/pose.yaml``
(``data.workers``, ``loader.batch_size``, ``eval.*``, ``head.sigma``, ``augment.*``).

Metrics (percent): ``AP`` (primary), ``AP50``, ``AP75``, ``APM``, ``APL``, ``AR``; COCO-WholeBody's ``AP``
is the whole-body AP and it adds ``body_AP``, ``foot_AP``, ``face_AP``, ``lefthand_AP``, ``righthand_AP``
and the matching ``*_AR``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from saip_bench.datasets import DATASETS
from saip_bench.engine import loader_workers
from saip_bench.errors import ConfigError, DataFormatError
from saip_bench.evaluate.adapter import EvalRequest
from saip_bench.evaluate.task import Task
from saip_bench.tasks.pose.data.coco_format import PoseInstance, PoseSplit, load_detections
from saip_bench.tasks.pose.dataset import PoseCrops
from saip_bench.tasks.pose.meta import WHOLEBODY_PARTS, KeypointMeta, keypoint_meta
from saip_bench.tasks.pose.metrics import coco_keypoint_metrics, rescore, wholebody_metrics

if TYPE_CHECKING:
    from saip_bench.backbones import Backbone


@dataclass(frozen=True)
class PoseData:
    """What :meth:`PoseAdapter.build_data` read: the two splits and the persons the metrics are taken on.

    Attributes:
        meta: the dataset's keypoint metadata (count, flip pairs, OKS sigmas).
        train: the training split (its persons with labelled keypoints).
        test: the test split (its json is the COCOeval ground truth).
        test_instances: the persons to predict: the test split's ground-truth boxes, or detections.
        boxes: ``"ground truth"`` or ``"detections"``.
    """

    meta: KeypointMeta
    train: PoseSplit
    test: PoseSplit
    test_instances: list[PoseInstance]
    boxes: str


def predict_keypoints(
    model: torch.nn.Module,
    loader: DataLoader,
    *,
    img_size: tuple[int, int],
    meta: KeypointMeta,
    device: torch.device,
) -> tuple[np.ndarray, np.ndarray]:
    """Image-space keypoints ``(N, K, 2)`` and scores ``(N, K)`` for every crop of an eval ``loader``."""
    from saip_bench.tasks.pose.model import eval_samples

    n = len(loader.dataset)  # type: ignore[arg-type]
    points = np.zeros((n, meta.num_keypoints, 2), np.float32)
    scores = np.zeros((n, meta.num_keypoints), np.float32)
    for batch in loader:
        samples = eval_samples(batch["center"].numpy(), batch["scale"].numpy(), img_size, meta.flip_indices)
        # fp32 even under the engine's bf16 autocast: mmpose decodes the heatmaps through numpy.
        with torch.autocast(device_type=device.type, enabled=False):
            results = model(batch["image"].to(device).float(), samples, mode="predict")
        for index, center, result in zip(
            batch["index"].tolist(), batch["center"].numpy(), results, strict=True
        ):
            xy = np.asarray(result.pred_instances.keypoints[0], dtype=np.float32)
            conf = np.asarray(result.pred_instances.keypoint_scores[0], dtype=np.float32)
            # UDP's refinement rescales each blurred heatmap by its maximum: an all-zero heatmap decodes to
            # NaN, and one NaN keypoint makes COCOeval's OKS NaN, which wins its greedy matching against
            # every real OKS and so steals another person's ground truth. Such points get the crop center
            # and score 0.
            bad = ~np.isfinite(xy).all(axis=1) | ~np.isfinite(conf)
            xy[bad], conf[bad] = center, 0.0
            points[index], scores[index] = xy, conf
    return points, scores


def score_predictions(
    dataset: str,
    split: PoseSplit,
    instances: Sequence[PoseInstance],
    points: np.ndarray,
    scores: np.ndarray,
    meta: KeypointMeta,
) -> dict[str, float]:
    """COCO results from per-instance predictions (mmpose's rescoring), scored against ``split``'s json."""
    results = []
    for inst, xy, conf in zip(instances, points, scores, strict=True):
        keypoints = np.concatenate([xy, conf[:, None]], axis=1)
        results.append({
            "image_id": inst.image_id, "category_id": 1, "keypoints": keypoints.reshape(-1).tolist(),
            "score": rescore(conf, inst.bbox_score),
        })  # fmt: skip
    if dataset == "coco_wholebody":
        return wholebody_metrics(split.coco, results, meta.sigmas, WHOLEBODY_PARTS)
    return coco_keypoint_metrics(split.coco, results, meta.sigmas)


class PoseAdapter(Task):
    """Top-down 2-D pose on COCO-Keypoints and COCO-WholeBody (ViTPose-simple head, UDP, flip test)."""

    name = "pose"
    protocols = ("finetune", "linear")
    min_batch = 2  # the smallest batch the pose runs have always used

    def build_data(self, request: EvalRequest) -> PoseData:
        """Both splits through the dataset registry, and the persons to evaluate on."""
        cfg = request.config.eval
        dataset = DATASETS.get(request.dataset)
        train = dataset.load(request.data_dir, str(cfg.train_split))
        test = dataset.load(request.data_dir, str(cfg.test_split))
        if len(train.instances) < 2:
            raise DataFormatError(train.json_path, "fewer than 2 persons with labelled keypoints")
        if cfg.bbox_file:
            instances = self._detections(request, test)
            boxes = "detections"
        else:
            if not test.instances:
                raise DataFormatError(test.json_path, "no person with labelled keypoints to evaluate on")
            instances, boxes = test.instances, "ground truth"
        return PoseData(keypoint_meta(request.dataset), train, test, instances, boxes)

    def build_model(self, request: EvalRequest, backbone: Backbone, data: PoseData) -> torch.nn.Module:
        """The ViTPose-simple estimator over ``backbone`` (see :func:`saip_bench.tasks.pose.model`)."""
        from saip_bench.tasks.pose.model import build_pose_model

        cfg = request.config
        return build_pose_model(
            backbone, data.meta.num_keypoints, request.img_size, sigma=float(cfg.head.sigma),
            flip_test=bool(cfg.eval.flip_test),
        )  # fmt: skip

    def train_set(self, request: EvalRequest, data: PoseData) -> PoseCrops:
        """Augmented training crops with UDP heatmap targets."""
        cfg = request.config
        augment = cfg.augment
        return PoseCrops(
            data.train.instances, request.img_size, data.meta.flip_indices, train=True,
            sigma=float(cfg.head.sigma), flip=float(augment.flip),
            shift_factor=float(augment.shift_factor), shift_prob=float(augment.shift_prob),
            scale_factor=tuple(augment.scale_factor), rotate_factor=float(augment.rotate_factor),
            rotate_prob=float(augment.rotate_prob),
        )  # fmt: skip

    def train_step(
        self, request: EvalRequest, model: torch.nn.Module, batch: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """mmpose's visibility-weighted heatmap MSE (``KeypointMSELoss``)."""
        from saip_bench.tasks.pose.model import train_samples

        losses = model(batch["image"], train_samples(batch["heatmaps"], batch["weights"]), mode="loss")
        return {"loss": losses["loss_kpt"].float()}

    def evaluate(self, request: EvalRequest, model: torch.nn.Module, data: PoseData) -> dict[str, float]:
        """COCO keypoint AP/AR (whole-body and per part for COCO-WholeBody) of flip-tested predictions."""
        cfg = request.config
        device = torch.device(request.device)
        loader = DataLoader(
            PoseCrops(data.test_instances, request.img_size, data.meta.flip_indices, train=False),
            batch_size=int(cfg.eval.batch_size), num_workers=loader_workers(int(cfg.data.workers)),
            pin_memory=device.type == "cuda",
        )  # fmt: skip
        points, scores = predict_keypoints(
            model, loader, img_size=request.img_size, meta=data.meta, device=device
        )
        return score_predictions(request.dataset, data.test, data.test_instances, points, scores, data.meta)

    def describe(self, request: EvalRequest, data: PoseData) -> dict[str, Any]:
        """Persons trained and evaluated on, and which boxes the evaluation crops come from."""
        return {
            "train_persons": len(data.train.instances),
            "test_persons": len(data.test_instances),
            "boxes": data.boxes,
        }

    @staticmethod
    def _detections(request: EvalRequest, split: PoseSplit) -> list[PoseInstance]:
        """The persons of ``eval.bbox_file`` (a COCO detection-results json) scoring ``eval.bbox_thr``."""
        cfg = request.config.eval
        path = Path(str(cfg.bbox_file))
        if not path.is_absolute():
            path = Path(request.data_dir) / path
        if not path.is_file():
            raise ConfigError(f"eval.bbox_file: {path} does not exist")
        threshold = float(cfg.bbox_thr)
        detections = load_detections(path, split, score_thr=threshold)
        if not detections:
            raise DataFormatError(path, f"no person detection scores at least {threshold}")
        return detections
