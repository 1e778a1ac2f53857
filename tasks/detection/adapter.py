"""The detection task's adapter for ``saip evaluate``: CrowdHuman, protocol ``finetune``.

Recipe keys this task reads (besides ``img_size``/``seed``, used by dispatch, and ``train``, the engine's)::

    data:     {train_split: train, test_split: val, max_train_images: null, max_test_images: null}
    eval:     {batch_size: 4, num_workers: 2, untrained: false}
    loader:   {batch_size: 16}                  # training batch
    augment:  {flip: 0.5}                       # horizontal flip
    head:     {pyramid_channels: 256, stacked_convs: 4, anchor_ratios: [1, 2, 3], ...}  (model.HeadSettings)
    test:     {score_thr: 0.05, nms_iou: 0.5, nms_pre: 1000, max_per_img: 300}  (model.PostprocessSettings)

Training runs through :func:`saip_bench.engine.fit`: ``step_fn`` calls mmdet's ``model.loss`` and
sums the terms; evaluation calls ``model.predict`` and scores the detections, mapped back to the original
image, with :func:`~saip_bench.tasks.detection.metrics.crowdhuman_metrics`: ``AP`` (primary), ``MR-2``
(lower is better) and ``JI``, in percent. ``eval.untrained: true`` also scores the detector before training
(``extra["untrained"]``), the reference a fine-tuning must beat.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import DataLoader

from saip_bench.engine import loader_workers, make_train_loader
from saip_bench.errors import ConfigError, DataFormatError
from saip_bench.evaluate.adapter import EvalRequest, EvalResult, check_request
from saip_bench.evaluate.protocols import LoaderSettings, recipe_settings
from saip_bench.tasks.detection.data.crowdhuman import SPLITS, CrowdHumanImage, load_split
from saip_bench.tasks.detection.metrics import ImageDetections, crowdhuman_metrics
from saip_bench.tasks.detection.model import HeadSettings, PostprocessSettings, build_detector, detection_loss
from saip_bench.tasks.detection.transforms import CrowdHumanImages, collate

log = logging.getLogger(__name__)

PRIMARY_METRIC = "AP"


@dataclass(frozen=True)
class DataSettings:
    train_split: str = "train"
    test_split: str = "val"
    max_train_images: int | None = None  # budgets: the first N images of the split
    max_test_images: int | None = None


@dataclass(frozen=True)
class EvalSettings:
    batch_size: int = 4
    num_workers: int = 2
    untrained: bool = False


@dataclass(frozen=True)
class FlipSettings:
    flip: float = 0.5


def _settings(recipe: dict[str, Any], name: str, cls: type) -> Any:
    values = dict(recipe.get(name) or {})
    if cls is HeadSettings and "anchor_ratios" in values:
        values["anchor_ratios"] = tuple(float(v) for v in values["anchor_ratios"])
    return recipe_settings({name: values}, name, cls)


def _split(root: Any, split: str, limit: int | None) -> list[CrowdHumanImage]:
    if split not in SPLITS:
        raise ConfigError(f"CrowdHuman has splits {', '.join(SPLITS)}, not {split!r}")
    images = load_split(root, split).images
    return images[: int(limit)] if limit else images


@torch.no_grad()
def predict_detections(
    model: torch.nn.Module, loader: DataLoader, device: torch.device
) -> list[ImageDetections]:
    """Run ``model.predict`` over ``loader``; boxes mapped back to the original images, with ground truth."""
    records: list[CrowdHumanImage] = loader.dataset.images  # type: ignore[attr-defined]
    out: list[ImageDetections] = []
    for images, samples in loader:
        results = model.predict(images.to(device), [s.to(device) for s in samples], rescale=False)
        for result in results:
            record = records[len(out)]
            scale = float(result.metainfo["scale_factor"][0])
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


class DetectionAdapter:
    """Pedestrian detection on CrowdHuman (full-body boxes)."""

    task = "detection"
    protocols = ("finetune",)

    def run(self, request: EvalRequest, backbone: Any) -> EvalResult:
        """Fine-tune a RetinaNet on ``backbone``; report CrowdHuman AP / MR-2 / JI (see module docstring)."""
        from saip_bench.engine import EngineConfig, fit

        check_request(self, request, needs_train=True)
        config = EngineConfig.from_dict(request.recipe["train"])
        data = _settings(request.recipe, "data", DataSettings)
        settings = _settings(request.recipe, "eval", EvalSettings)
        loader_settings = _settings(request.recipe, "loader", LoaderSettings)
        augment = _settings(request.recipe, "augment", FlipSettings)
        head = _settings(request.recipe, "head", HeadSettings)
        test = _settings(request.recipe, "test", PostprocessSettings)
        device = torch.device(request.device)

        train_images = _split(request.data_dir, data.train_split, data.max_train_images)
        test_images = _split(request.data_dir, data.test_split, data.max_test_images)
        if sum(image.num_targets for image in train_images) == 0:
            raise DataFormatError(
                request.data_dir, f"split {data.train_split!r} has no person boxes to train on"
            )
        with torch.random.fork_rng(devices=[]):  # a seeded head without resetting the caller's global RNG
            torch.manual_seed(request.seed)
            model = build_detector(backbone, head, test).to(device)

        train_set = CrowdHumanImages(train_images, request.img_size, flip=augment.flip)
        train_loader = make_train_loader(
            train_set, batch_size=loader_settings.batch_size, seed=request.seed,
            num_workers=settings.num_workers, device=device, collate_fn=collate,
        )  # fmt: skip
        test_loader = DataLoader(
            CrowdHumanImages(test_images, request.img_size), batch_size=settings.batch_size, shuffle=False,
            num_workers=loader_workers(settings.num_workers), collate_fn=collate,
        )  # fmt: skip

        def step_fn(
            train_model: torch.nn.Module, batch: tuple[torch.Tensor, list[Any]]
        ) -> dict[str, torch.Tensor]:
            images, samples = batch
            return detection_loss(train_model, images, [s.to(images.device) for s in samples])

        def evaluate_fn(eval_model: torch.nn.Module) -> dict[str, float]:
            return crowdhuman_metrics(predict_detections(eval_model, test_loader, device))

        extra: dict[str, Any] = {}
        if settings.untrained:
            model.eval()
            extra["untrained"] = evaluate_fn(model)
            model.train()
        result = fit(
            model, train_loader, step_fn, config=config, run_dir=request.run_dir, device=device,
            evaluate_fn=evaluate_fn, primary_metric=PRIMARY_METRIC, best="max", resume=request.resume,
            progress=request.progress, seed=request.seed + 1,
        )  # fmt: skip
        metrics = {k: float(v) for k, v in result.metrics.items()}
        log.info(
            "%s finetune: AP %.2f, MR-2 %.2f, JI %.2f (epoch %d)",
            request.dataset, metrics["AP"], metrics["MR-2"], metrics["JI"], result.selected_epoch,
        )  # fmt: skip
        extra.update(
            train_images=len(train_set), test_images=len(test_images), selected_epoch=result.selected_epoch,
            best_epoch=result.best_epoch, test_persons=int(sum(i.num_targets for i in test_images)),
        )  # fmt: skip
        return EvalResult(metrics=metrics, primary_metric=PRIMARY_METRIC, extra=extra)
