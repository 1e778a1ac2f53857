"""The fashion task for ``saip evaluate``: Fashionpedia instance segmentation, protocol ``finetune``.

A Mask R-CNN (:mod:`saip_bench.tasks.fashion.model`) on the backbone is fine-tuned on the train split through
the task template (:class:`saip_bench.mm.detection.DetectorTask`: the engine, mmdet's summed losses) and
evaluated on the test split by COCOeval (:mod:`saip_bench.tasks.fashion.metrics`). Every recipe key it reads
is documented in ``configs/evaluate/defaults/fashion.yaml``.

Metrics (percent): ``AP`` (box AP, primary), ``AP50``, ``AP75``, ``APs``, ``APm``, ``APl`` and the same with
``_mask`` for mask AP.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from torch import nn

from saip_bench.datasets import DATASETS
from saip_bench.errors import DataFormatError
from saip_bench.mm.detection import DetectorTask, inference_loader, predict
from saip_bench.tasks.fashion.dataset import FashionDataset
from saip_bench.tasks.fashion.metrics import instance_ap, mask_to_rle
from saip_bench.tasks.fashion.model import build_mask_rcnn

if TYPE_CHECKING:
    from saip_bench.backbones import Backbone
    from saip_bench.evaluate.adapter import EvalRequest
    from saip_bench.tasks.fashion.data import FashionImage


@dataclass(frozen=True)
class FashionData:
    """The run's images, the category ids in label order and the test split's COCO json (the ground truth)."""

    train: list[FashionImage]
    test: list[FashionImage]
    category_ids: list[int]
    gt: dict[str, Any]


def _first(images: list[Any], limit: int | None) -> list[Any]:
    return images[: int(limit)] if limit else images


def predictions_to_results(
    predictions: Iterable[Any], category_ids: list[int], *, masks: bool = True
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """mmdet ``DetDataSample`` predictions (rescaled to original pixels) -> COCO box and mask results."""
    boxes_out: list[dict[str, Any]] = []
    masks_out: list[dict[str, Any]] = []
    for pred in predictions:
        inst = pred.pred_instances
        image_id = int(pred.metainfo["img_id"])
        bboxes = inst.bboxes.float().cpu().numpy()
        scores = inst.scores.float().cpu().numpy()
        labels = inst.labels.cpu().numpy()
        pred_masks = inst.masks.cpu().numpy() if masks and "masks" in inst else None
        for k in range(len(scores)):
            x0, y0, x1, y1 = (float(v) for v in bboxes[k])
            record = {"image_id": image_id, "category_id": int(category_ids[int(labels[k])]),
                      "score": float(scores[k])}  # fmt: skip
            boxes_out.append({**record, "bbox": [x0, y0, x1 - x0, y1 - y0]})
            if pred_masks is not None:
                masks_out.append({**record, "segmentation": mask_to_rle(pred_masks[k])})
    return boxes_out, masks_out


class FashionAdapter(DetectorTask):
    """Fashionpedia instance segmentation (Mask R-CNN, box and mask AP)."""

    name = "fashion"
    protocols = ("finetune",)

    def build_data(self, request: EvalRequest) -> FashionData:
        data = request.config.data
        dataset = DATASETS.get(request.dataset)
        train_split = dataset.load(request.data_dir, data.train_split)
        test_split = dataset.load(request.data_dir, data.test_split)
        train = [image for image in _first(train_split.images, data.max_train_images) if image.annotations]
        test = _first(test_split.images, data.max_test_images)
        if not train:
            raise DataFormatError(train_split.json_path, "no training image has an annotation")
        if not test:
            raise DataFormatError(test_split.json_path, "no validation images")
        category_ids = [int(c["id"]) for c in sorted(train_split.categories, key=lambda c: c["id"])]
        if sorted(int(c["id"]) for c in test_split.categories) != category_ids:
            raise DataFormatError(
                test_split.json_path, f"categories differ from {train_split.json_path.name}'s"
            )
        return FashionData(train=train, test=test, category_ids=category_ids, gt=test_split.raw)

    def build_model(self, request: EvalRequest, backbone: Backbone, data: FashionData) -> nn.Module:
        return build_mask_rcnn(backbone, len(data.category_ids), request.config.model, request.config.eval)

    def train_set(self, request: EvalRequest, data: FashionData) -> FashionDataset:
        return FashionDataset(
            data.train, data.category_ids, request.img_size, flip=float(request.config.augment.flip)
        )

    def evaluate(self, request: EvalRequest, model: nn.Module, data: FashionData) -> dict[str, float]:
        loader = inference_loader(
            FashionDataset(data.test, data.category_ids, request.img_size),
            batch_size=request.config.eval.batch_size, workers=request.config.data.workers,
        )  # fmt: skip
        boxes, masks = predictions_to_results(
            predict(model, loader, request.device, rescale=True), data.category_ids
        )
        return instance_ap(data.gt, boxes, masks, image_ids=[image.id for image in data.test])

    def describe(self, request: EvalRequest, data: FashionData) -> dict[str, Any]:
        return {"train_images": len(data.train), "test_images": len(data.test)}
