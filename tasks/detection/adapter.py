"""The detection task for ``saip evaluate``: CrowdHuman, protocol ``finetune``.

A RetinaNet (:mod:`saip_bench.tasks.detection.model`) on the backbone is fine-tuned through the task
template (:class:`saip_bench.mm.detection.DetectorTask`: the engine, mmdet's summed losses) and scored on the
test split by :func:`~saip_bench.tasks.detection.metrics.crowdhuman_metrics`, the detections mapped back to
the original image: ``AP`` (primary), ``MR-2`` (lower is better) and ``JI``, in percent. Every recipe key
it reads is documented in ``configs/evaluate/defaults/detection.yaml``. ``eval.untrained: true`` also scores
the detector before training (``extra["untrained"]``), the reference a fine-tuning must beat.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from saip_bench.datasets import DATASETS
from saip_bench.errors import ConfigError, DataFormatError
from saip_bench.mm.detection import DetectorTask, inference_loader, predict
from saip_bench.tasks.detection.data.crowdhuman import SPLITS
from saip_bench.tasks.detection.dataset import CrowdHumanImages
from saip_bench.tasks.detection.metrics import ImageDetections, crowdhuman_metrics
from saip_bench.tasks.detection.model import build_retinanet

if TYPE_CHECKING:
    from saip_bench.backbones import Backbone
    from saip_bench.engine import FitResult
    from saip_bench.evaluate.adapter import EvalRequest
    from saip_bench.tasks.detection.data.crowdhuman import CrowdHumanImage


@dataclass
class CrowdHumanData:
    """The run's images; ``untrained`` holds the metrics before training when ``eval.untrained`` is set."""

    train: list[CrowdHumanImage]
    test: list[CrowdHumanImage]
    untrained: dict[str, float] | None = None


def _first(images: list[Any], limit: int | None) -> list[Any]:
    return images[: int(limit)] if limit else images


def to_image_detections(records: list[CrowdHumanImage], predictions: Any) -> list[ImageDetections]:
    """mmdet predictions in input pixels (``rescale=False``), one per record in order -> the metric's input:
    boxes divided by the per-axis ``scale_factor`` into original pixels, with the record's ground truth."""
    out: list[ImageDetections] = []
    for record, result in zip(records, predictions, strict=True):
        scale = np.array([*result.metainfo["scale_factor"]] * 2, dtype=np.float32)  # (w, h, w, h)
        pred = result.pred_instances
        out.append(
            ImageDetections(
                gt_boxes=record.boxes,
                ignore_boxes=record.ignore,
                det_boxes=pred.bboxes.float().cpu().numpy() / scale,
                det_scores=pred.scores.float().cpu().numpy(),
                size=tuple(int(v) for v in result.metainfo["ori_shape"]),  # type: ignore[arg-type]
            )
        )
    return out


class DetectionAdapter(DetectorTask):
    """Pedestrian detection on CrowdHuman (full-body boxes)."""

    name = "detection"
    protocols = ("finetune",)

    def build_data(self, request: EvalRequest) -> CrowdHumanData:
        data = request.config.data
        for split in (data.train_split, data.test_split):
            if split not in SPLITS:
                raise ConfigError(f"CrowdHuman has splits {', '.join(SPLITS)}, not {split!r}")
        dataset = DATASETS.get(request.dataset)
        train = _first(dataset.load(request.data_dir, data.train_split).images, data.max_train_images)
        test = _first(dataset.load(request.data_dir, data.test_split).images, data.max_test_images)
        if sum(image.num_targets for image in train) == 0:
            raise DataFormatError(
                request.data_dir, f"split {data.train_split!r} has no person boxes to train on"
            )
        return CrowdHumanData(train=train, test=test)

    def build_model(self, request: EvalRequest, backbone: Backbone, data: CrowdHumanData) -> nn.Module:
        return build_retinanet(backbone, request.config.head, request.config.eval)

    def train_set(self, request: EvalRequest, data: CrowdHumanData) -> CrowdHumanImages:
        return CrowdHumanImages(data.train, request.img_size, flip=float(request.config.augment.flip))

    def finetune(
        self, request: EvalRequest, model: nn.Module, data: CrowdHumanData
    ) -> tuple[dict, FitResult]:
        if request.config.eval.untrained:
            model.eval()
            with torch.no_grad():
                data.untrained = self.evaluate(request, model, data)
            model.train()
        return super().finetune(request, model, data)

    def evaluate(self, request: EvalRequest, model: nn.Module, data: CrowdHumanData) -> dict[str, float]:
        loader = inference_loader(
            CrowdHumanImages(data.test, request.img_size), batch_size=request.config.eval.batch_size,
            workers=request.config.data.workers,
        )  # fmt: skip
        return crowdhuman_metrics(
            to_image_detections(data.test, predict(model, loader, request.device, rescale=False))
        )

    def describe(self, request: EvalRequest, data: CrowdHumanData) -> dict[str, Any]:
        facts: dict[str, Any] = {
            "train_images": len(data.train), "test_images": len(data.test),
            "test_persons": int(sum(image.num_targets for image in data.test)),
        }  # fmt: skip
        if data.untrained is not None:
            facts["untrained"] = data.untrained
        return facts
