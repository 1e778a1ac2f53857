"""The fashion task's adapter for ``saip evaluate``: Fashionpedia instance segmentation, ``finetune``.

A Mask R-CNN (:mod:`saip_bench.tasks.fashion.model`) on the backbone is fine-tuned on the train split through
the suite's engine (:func:`saip_bench.engine.fit`: AdamW, layer decay, checkpoints) and evaluated on
the validation split by COCOeval (:mod:`saip_bench.tasks.fashion.metrics`).

Recipe keys this task reads (besides ``img_size``/``seed``, used by dispatch, and ``train``, the engine's)::

    eval:    {batch_size: 2, num_workers: 2, train_split: train, test_split: val,
              train_images: 0, test_images: 0}        # 0 = every image of the split
    loader:  {batch_size: 16}                          # training batch
    augment: {flip: 0.5}                               # horizontal flip probability
    model:   {strides: [4, 8, 16, 32], channels: 256, rpn_pre_nms: 2000, rpn_proposals: 1000,
              rcnn_samples: 512, max_per_img: 100, score_thr: 0.05}

Metrics (percent): ``AP`` (box AP, primary), ``AP50``, ``AP75``, ``APs``, ``APm``, ``APl`` and the same with
``_mask`` for mask AP.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import DataLoader

from saip_bench.engine import loader_workers, make_train_loader
from saip_bench.errors import DataFormatError
from saip_bench.evaluate.adapter import EvalRequest, EvalResult, check_request
from saip_bench.evaluate.protocols import LoaderSettings, recipe_settings

log = logging.getLogger(__name__)

PRIMARY_METRIC = "AP"


@dataclass(frozen=True)
class EvalSettings:
    batch_size: int = 2
    num_workers: int = 2
    train_split: str = "train"
    test_split: str = "val"
    train_images: int = 0
    test_images: int = 0


@dataclass(frozen=True)
class AugmentSettings:
    flip: float = 0.5


def _first(images: list[Any], limit: int) -> list[Any]:
    return images[:limit] if limit > 0 else images


def predictions_to_results(
    predictions: list[Any], category_ids: list[int], *, masks: bool = True
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """mmdet ``DetDataSample`` predictions (rescaled to original pixels) -> COCO box and mask results."""
    from saip_bench.tasks.fashion.metrics import mask_to_rle

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


class FashionAdapter:
    """Fashionpedia instance segmentation (Mask R-CNN, box and mask AP)."""

    task = "fashion"
    protocols = ("finetune",)

    def run(self, request: EvalRequest, backbone: Any) -> EvalResult:
        """Fine-tune a Mask R-CNN on ``backbone`` and report box and mask AP (see module docstring)."""
        from saip_bench.engine import EngineConfig, fit
        from saip_bench.tasks.fashion.data import load_split
        from saip_bench.tasks.fashion.dataset import FashionDataset, collate
        from saip_bench.tasks.fashion.metrics import instance_ap
        from saip_bench.tasks.fashion.model import ModelSettings, build_mask_rcnn, sum_losses

        check_request(self, request, needs_train=True)
        settings = recipe_settings(request.recipe, "eval", EvalSettings)
        loader_settings = recipe_settings(request.recipe, "loader", LoaderSettings)
        augment = recipe_settings(request.recipe, "augment", AugmentSettings)
        model_settings = recipe_settings(request.recipe, "model", ModelSettings)
        model_settings = dataclasses.replace(model_settings, strides=tuple(model_settings.strides))
        config = EngineConfig.from_dict(request.recipe["train"])
        train_split = load_split(request.data_dir, settings.train_split)
        test_split = load_split(request.data_dir, settings.test_split)
        train_images = [im for im in _first(train_split.images, settings.train_images) if im.annotations]
        test_images = _first(test_split.images, settings.test_images)
        if not train_images:
            raise DataFormatError(train_split.json_path, "no training image has an annotation")
        if not test_images:
            raise DataFormatError(test_split.json_path, "no validation images")
        category_ids = [int(c["id"]) for c in sorted(train_split.categories, key=lambda c: c["id"])]
        if sorted(int(c["id"]) for c in test_split.categories) != category_ids:
            raise DataFormatError(
                test_split.json_path, f"categories differ from {train_split.json_path.name}'s"
            )

        device = torch.device(request.device)
        with torch.random.fork_rng(devices=[]):  # seeded heads without resetting the caller's global RNG
            torch.manual_seed(request.seed)
            model = build_mask_rcnn(backbone, len(category_ids), model_settings).to(device)

        train_set = FashionDataset(train_images, category_ids, request.img_size, flip=augment.flip)
        workers = loader_workers(settings.num_workers)
        train_loader = make_train_loader(
            train_set, batch_size=loader_settings.batch_size, seed=request.seed,
            num_workers=workers, device=device, collate_fn=collate,
        )  # fmt: skip
        test_loader = DataLoader(
            FashionDataset(test_images, category_ids, request.img_size),
            batch_size=settings.batch_size, num_workers=workers, collate_fn=collate,
        )  # fmt: skip
        gt = test_split.raw
        test_ids = [im.id for im in test_images]

        def step_fn(
            train_model: torch.nn.Module, batch: tuple[torch.Tensor, list[Any]]
        ) -> dict[str, torch.Tensor]:
            images, samples = batch
            samples = [s.to(images.device) for s in samples]
            # Through __call__ (mode="loss"), so a DistributedDataParallel wrapper sees the forward pass.
            return sum_losses(train_model(images, samples, mode="loss"))

        def evaluate_fn(eval_model: torch.nn.Module) -> dict[str, float]:
            boxes: list[dict[str, Any]] = []
            masks: list[dict[str, Any]] = []
            for images, samples in test_loader:
                preds = eval_model(images.to(device), [s.to(device) for s in samples], mode="predict")
                b, m = predictions_to_results(preds, category_ids)
                boxes += b
                masks += m
            return instance_ap(gt, boxes, masks, image_ids=test_ids)

        result = fit(
            model, train_loader, step_fn, config=config, run_dir=request.run_dir, device=device,
            evaluate_fn=evaluate_fn, primary_metric=PRIMARY_METRIC, best="max", resume=request.resume,
            progress=request.progress, seed=request.seed + 1,
        )  # fmt: skip
        metrics = {k: float(v) for k, v in result.metrics.items()}
        log.info(
            "%s finetune: box AP %.2f, mask AP %.2f (epoch %d)",
            request.dataset, metrics["AP"], metrics.get("AP_mask", float("nan")), result.selected_epoch,
        )  # fmt: skip
        return EvalResult(
            metrics=metrics,
            primary_metric=PRIMARY_METRIC,
            extra={
                "train_images": len(train_set), "test_images": len(test_images),
                "selected_epoch": result.selected_epoch, "best_epoch": result.best_epoch,
                "final_loss": result.history[-1].get("loss") if result.history else None,
            },
        )  # fmt: skip
