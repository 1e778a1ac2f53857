"""The pose task's adapter for ``saip evaluate``: COCO-Keypoints and COCO-WholeBody, top-down, through mmpose.

Protocols: ``finetune`` trains backbone + head (layer-wise lr decay on the backbone's ``blocks.N``);
``linear`` freezes the backbone and trains only the neck + head. Both train through
:func:`saip_bench.engine.fit` and evaluate with the flip test on ground-truth boxes, or on detected
boxes when ``eval.bbox_file`` names a COCO detection-results json.

Recipe keys this task reads (besides ``img_size``/``seed``, used by dispatch, and ``train``, the engine's)::

    eval:    {batch_size: 64, num_workers: 4, flip_test: true, bbox_file: null, bbox_thr: 0.0,
              train_split: train, test_split: val}
    head:    {sigma: 2.0}                       # UDP heatmap Gaussian sigma (heatmap pixels)
    loader:  {batch_size: 64}                   # training batch
    augment: {flip: 0.5, shift_factor: 0.16, shift_prob: 0.3, scale_factor: [0.5, 1.5],
              rotate_factor: 80, rotate_prob: 0.6}

Metrics (percent): ``AP`` (primary), ``AP50``, ``AP75``, ``APM``, ``APL``, ``AR``; COCO-WholeBody's ``AP``
is the whole-body AP and it adds ``body_AP``, ``foot_AP``, ``face_AP``, ``lefthand_AP``, ``righthand_AP``
and the matching ``*_AR``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler, Sampler

from saip_bench.engine import loader_workers
from saip_bench.errors import ConfigError, DataFormatError
from saip_bench.evaluate.adapter import EvalRequest, EvalResult, check_request
from saip_bench.evaluate.protocols import LoaderSettings, recipe_settings
from saip_bench.tasks.pose.data import PoseInstance, PoseSplit, load_pose_split
from saip_bench.tasks.pose.data.coco_format import load_detections
from saip_bench.tasks.pose.dataset import PoseCrops
from saip_bench.tasks.pose.meta import WHOLEBODY_PARTS, KeypointMeta, keypoint_meta
from saip_bench.tasks.pose.metrics import coco_keypoint_metrics, rescore, wholebody_metrics
from saip_bench.tasks.pose.transforms import AugmentSettings

log = logging.getLogger(__name__)

PRIMARY_METRIC = "AP"


@dataclass(frozen=True)
class EvalSettings:
    """The ``eval`` section: evaluation loader, flip test, and the optional detection boxes."""

    batch_size: int = 64
    num_workers: int = 4
    flip_test: bool = True
    bbox_file: str | None = None
    bbox_thr: float = 0.0
    train_split: str = "train"
    test_split: str = "val"


@dataclass(frozen=True)
class HeadSettings:
    """The ``head`` section: the UDP codec's Gaussian sigma."""

    sigma: float = 2.0


class EpochSampler(Sampler[int]):
    """Shuffles like its inner sampler and tells the dataset the epoch, so augmentations change per epoch."""

    def __init__(self, inner: Sampler[int], dataset: PoseCrops) -> None:
        self.inner = inner
        self.dataset = dataset

    def __iter__(self) -> Iterator[int]:
        return iter(self.inner)

    def __len__(self) -> int:
        return len(self.inner)  # type: ignore[arg-type]

    def set_epoch(self, epoch: int) -> None:
        self.dataset.set_epoch(epoch)
        if hasattr(self.inner, "set_epoch"):
            self.inner.set_epoch(epoch)


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


class PoseAdapter:
    """Top-down 2-D pose on COCO-Keypoints and COCO-WholeBody (ViTPose-simple head, UDP, flip test)."""

    task = "pose"
    protocols = ("finetune", "linear")

    def run(self, request: EvalRequest, backbone: Any) -> EvalResult:
        """Train and evaluate ``backbone`` as ``request`` says (see module docstring)."""
        from saip_bench.engine import EngineConfig, fit
        from saip_bench.tasks.pose.model import build_pose_model, train_samples

        check_request(self, request, needs_train=True)
        settings = recipe_settings(request.recipe, "eval", EvalSettings)
        head = recipe_settings(request.recipe, "head", HeadSettings)
        loader_settings = recipe_settings(request.recipe, "loader", LoaderSettings)
        augment_values = dict(request.recipe.get("augment") or {})
        if "scale_factor" in augment_values:
            augment_values["scale_factor"] = tuple(augment_values["scale_factor"])
        augment = recipe_settings({"augment": augment_values}, "augment", AugmentSettings)
        config = EngineConfig.from_dict(request.recipe["train"])
        meta = keypoint_meta(request.dataset)
        train_split = load_pose_split(request.dataset, request.data_dir, settings.train_split)
        test_split = load_pose_split(request.dataset, request.data_dir, settings.test_split)
        if len(train_split.instances) < 2:
            raise DataFormatError(train_split.json_path, "fewer than 2 persons with labelled keypoints")
        test_instances = self._test_instances(request, settings, test_split)
        device = torch.device(request.device)

        with torch.random.fork_rng(devices=[]):  # a seeded head without resetting the caller's global RNG
            torch.manual_seed(request.seed)
            model = build_pose_model(
                backbone, meta.num_keypoints, request.img_size, sigma=head.sigma, flip_test=settings.flip_test
            ).to(device)
        if request.protocol == "linear":
            model.backbone.requires_grad_(False)

        train_set = PoseCrops(
            train_split.instances, request.img_size, meta.flip_indices, train=True, augment=augment,
            sigma=head.sigma, seed=request.seed,
        )  # fmt: skip
        distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
        inner: Sampler[int] = (
            DistributedSampler(train_set, shuffle=True, seed=request.seed, drop_last=True)
            if distributed
            else RandomSampler(train_set, generator=torch.Generator().manual_seed(request.seed))
        )
        batch_size = max(2, min(loader_settings.batch_size, len(train_set)))
        train_loader = DataLoader(
            train_set, batch_size=batch_size, sampler=EpochSampler(inner, train_set), drop_last=True,
            num_workers=loader_workers(settings.num_workers), pin_memory=device.type == "cuda",
        )  # fmt: skip
        test_loader = DataLoader(
            PoseCrops(test_instances, request.img_size, meta.flip_indices, train=False),
            batch_size=settings.batch_size, num_workers=loader_workers(settings.num_workers),
            pin_memory=device.type == "cuda",
        )  # fmt: skip

        def step_fn(train_model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
            samples = train_samples(batch["heatmaps"], batch["weights"])
            losses = train_model(batch["image"], samples, mode="loss")
            return {"loss": losses["loss_kpt"].float()}

        def evaluate_fn(eval_model: torch.nn.Module) -> dict[str, float]:
            points, scores = predict_keypoints(
                eval_model, test_loader, img_size=request.img_size, meta=meta, device=device
            )
            return score_predictions(request.dataset, test_split, test_instances, points, scores, meta)

        result = fit(
            model, train_loader, step_fn, config=config, run_dir=request.run_dir, device=device,
            evaluate_fn=evaluate_fn, primary_metric=PRIMARY_METRIC, best="max", resume=request.resume,
            progress=request.progress,
        )  # fmt: skip
        metrics = {k: float(v) for k, v in result.metrics.items()}
        log.info(
            "%s %s: AP %.2f (epoch %d)", request.dataset, request.protocol, metrics[PRIMARY_METRIC],
            result.selected_epoch,
        )  # fmt: skip
        return EvalResult(
            metrics=metrics,
            primary_metric=PRIMARY_METRIC,
            extra={
                "train_persons": len(train_set), "test_persons": len(test_instances),
                "boxes": "detections" if settings.bbox_file else "ground truth",
                "selected_epoch": result.selected_epoch, "best_epoch": result.best_epoch,
            },
        )  # fmt: skip

    @staticmethod
    def _test_instances(request: EvalRequest, settings: EvalSettings, split: PoseSplit) -> list[PoseInstance]:
        if not settings.bbox_file:
            if not split.instances:
                raise DataFormatError(split.json_path, "no person with labelled keypoints to evaluate on")
            return split.instances
        path = Path(settings.bbox_file)
        if not path.is_absolute():
            path = Path(request.data_dir) / path
        if not path.is_file():
            raise ConfigError(f"eval.bbox_file: {path} does not exist")
        detections = load_detections(path, split, score_thr=settings.bbox_thr)
        if not detections:
            raise DataFormatError(path, f"no person detection scores at least {settings.bbox_thr}")
        return detections
