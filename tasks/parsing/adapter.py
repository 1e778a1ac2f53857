"""The parsing task's adapter for ``saip evaluate``: protocols ``finetune`` and ``linear`` on LIP and CIHP.

``finetune`` trains backbone + pyramid + head; ``linear`` freezes the backbone and trains the pyramid and
head (a dense "linear" probe: the backbone's features are fixed). Both train through
:func:`saip_bench.engine.fit` with the recipe's pixel-wise loss (255 ignored; plain cross-entropy
as the field trains, or OHEM / class-balanced CE, see :mod:`saip_bench.tasks.parsing.loss`) on the logits
upsampled to the crop size.

Recipe keys this task reads (besides ``img_size``/``seed``, used by dispatch, and ``train``, the engine's)::

    eval:     {batch_size: 8, num_workers: 4, flip: false, scales: [1.0]}
    head:     {pyramid_channels: 256, head_channels: 256, dropout: 0.1}
    loader:   {batch_size: 16}
    augment:  {scale_range: [0.5, 2.0], flip: 0.5}
    loss:     {name: ce, thresh: 0.7, min_kept: 100000, balance_c: 1.02}

Evaluation letterboxes each image into the input size (aspect kept, as in training) and predicts at its
original label resolution. ``eval.flip`` averages the logits with the mirrored image's (left/right classes
swapped back); ``eval.scales`` runs the network at multiples of the input size (each side rounded to a
multiple of 32) and averages the logits. Metrics come from one confusion matrix
over the val set (see :mod:`saip_bench.tasks.parsing.metrics`): ``mIoU`` (primary), ``aAcc``, ``mAcc`` and
``IoU.<class>``, in percent.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from saip_bench.engine import loader_workers, make_train_loader
from saip_bench.errors import ConfigError, DataFormatError
from saip_bench.evaluate.adapter import EvalRequest, EvalResult, check_request
from saip_bench.evaluate.protocols import LoaderSettings, recipe_settings, scaled_size
from saip_bench.tasks.parsing.data import IGNORE_INDEX, ParsingSet, flip_permutation, load_parsing_set
from saip_bench.tasks.parsing.images import ParsingImages, collate_eval, fit_size
from saip_bench.tasks.parsing.loss import LossSettings, parsing_loss
from saip_bench.tasks.parsing.metrics import all_reduce_confusion, segmentation_metrics, update_confusion
from saip_bench.tasks.parsing.model import ParsingModel

log = logging.getLogger(__name__)

PRIMARY_METRIC = "mIoU"
SIZE_STEP = 32  # multi-scale sizes are rounded to the pyramid's coarsest stride


@dataclass(frozen=True)
class EvalSettings:
    batch_size: int = 8
    num_workers: int = 4
    flip: bool = False
    scales: tuple[float, ...] = (1.0,)


@dataclass(frozen=True)
class HeadSettings:
    pyramid_channels: int = 256
    head_channels: int = 256
    dropout: float = 0.1


@dataclass(frozen=True)
class ParsingAugment:
    scale_range: tuple[float, float] = (0.5, 2.0)
    flip: float = 0.5


@contextlib.contextmanager
def backbone_input_size(backbone: Any, size: tuple[int, int]) -> Iterator[None]:
    """Run ``backbone`` at ``size`` inside the block; its position embedding is restored exactly after."""
    original = tuple(backbone.img_size)
    if tuple(size) == original:
        yield
        return
    pos = getattr(backbone.model, "pos_embed", None)
    saved = pos.detach().clone() if isinstance(pos, torch.Tensor) else None
    backbone.set_img_size(size)
    try:
        yield
    finally:
        backbone.set_img_size(original)
        if saved is not None:
            with torch.no_grad():
                backbone.model.pos_embed.copy_(saved)


@dataclass
class Predictor:
    """Logits of a batch at its input size, with optional flip and multi-scale averaging."""

    model: ParsingModel
    img_size: tuple[int, int]
    flip: bool = False
    scales: tuple[float, ...] = (1.0,)
    perm: list[int] = field(default_factory=flip_permutation)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        total = None
        for scale in self.scales:
            size = self.img_size if scale == 1.0 else scaled_size(self.img_size, scale, SIZE_STEP)
            x = images if size == tuple(images.shape[-2:]) else F.interpolate(
                images, size=size, mode="bilinear", align_corners=False
            )  # fmt: skip
            with backbone_input_size(self.model.backbone, size):
                logits = self._logits(x)
                if self.flip:
                    logits = logits + self._logits(x.flip(-1)).flip(-1)[:, self.perm]
            logits = F.interpolate(logits, size=images.shape[-2:], mode="bilinear", align_corners=False)
            total = logits if total is None else total + logits
        assert total is not None
        return total

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x).float()


def evaluate_split(
    predictor: Predictor, loader: DataLoader, num_classes: int, class_names: tuple[str, ...], device: Any
) -> dict[str, float]:
    """Predict every image of ``loader`` at its label's resolution and score the confusion matrix.

    The loader's images are letterboxed (:func:`~saip_bench.tasks.parsing.images.letterbox`): each image's
    logits are cropped to its fitted region before they are upsampled to its label.
    """
    conf = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=device)
    for images, labels in loader:
        logits = predictor(images.to(device))
        for logit, label in zip(logits, labels, strict=True):
            label = label.to(device)
            h, w = fit_size(label.shape[0], label.shape[1], tuple(logit.shape[-2:]))
            up = F.interpolate(logit[None, :, :h, :w], size=label.shape, mode="bilinear", align_corners=False)
            update_confusion(conf, up[0].argmax(0), label, ignore_index=IGNORE_INDEX)
    return segmentation_metrics(all_reduce_confusion(conf), class_names)


class ParsingAdapter:
    """Human parsing on LIP and CIHP."""

    task = "parsing"
    protocols = ("finetune", "linear")

    def run(self, request: EvalRequest, backbone: Any) -> EvalResult:
        """Train as ``request.protocol`` says and evaluate on the val split (see module docstring)."""
        check_request(self, request, needs_train=True)
        settings = recipe_settings(request.recipe, "eval", EvalSettings)
        head = recipe_settings(request.recipe, "head", HeadSettings)
        loader_settings = recipe_settings(request.recipe, "loader", LoaderSettings)
        augment = recipe_settings(request.recipe, "augment", ParsingAugment)
        loss = recipe_settings(request.recipe, "loss", LossSettings)
        if not settings.scales or any(float(s) <= 0 for s in settings.scales):
            raise ConfigError(f"recipe eval.scales must be positive multiples, got {settings.scales}")
        data = load_parsing_set(request.dataset, request.data_dir)
        if len(data.train) < 1 or len(data.val) < 1:
            raise DataFormatError(request.data_dir, "parsing needs at least one train and one val image")
        return self._train(request, backbone, data, settings, head, loader_settings, augment, loss)

    def build_model(self, backbone: Any, data: ParsingSet, head: HeadSettings, *, protocol: str, seed: int):
        """The parsing network on ``backbone``, its new layers seeded by ``seed``."""
        with torch.random.fork_rng(devices=[]):  # seeded new layers without resetting the caller's RNG
            torch.manual_seed(seed)
            return ParsingModel(
                backbone, len(data.classes), pyramid_channels=head.pyramid_channels,
                head_channels=head.head_channels, dropout=head.dropout, freeze_backbone=protocol == "linear",
            )  # fmt: skip

    def _train(
        self,
        request: EvalRequest,
        backbone: Any,
        data: ParsingSet,
        settings: EvalSettings,
        head: HeadSettings,
        loader_settings: LoaderSettings,
        augment: ParsingAugment,
        loss: LossSettings,
    ) -> EvalResult:
        from saip_bench.engine import EngineConfig, build_param_groups, fit

        config = EngineConfig.from_dict(request.recipe["train"])
        device = torch.device(request.device)
        model = self.build_model(backbone, data, head, protocol=request.protocol, seed=request.seed).to(
            device
        )
        img_size = tuple(int(v) for v in request.img_size)
        train_set = ParsingImages(
            data.train.images, data.train.labels, img_size, train=True,
            scale_range=tuple(augment.scale_range), flip=augment.flip, seed=request.seed,
        )  # fmt: skip
        train_loader = make_train_loader(  # at least 2 samples: BatchNorm in the head
            train_set, batch_size=loader_settings.batch_size, seed=request.seed, min_batch=2,
            num_workers=settings.num_workers, device=device,
        )  # fmt: skip
        val_loader = self.val_loader(data, img_size, settings, device)
        predictor = Predictor(
            model, img_size, flip=settings.flip, scales=tuple(float(s) for s in settings.scales)
        )

        def step_fn(train_model: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> dict:
            images, targets = batch
            logits = train_model(images).float()
            logits = F.interpolate(logits, size=targets.shape[-2:], mode="bilinear", align_corners=False)
            return {"loss": parsing_loss(logits, targets, loss)}

        def evaluate_fn(eval_model: torch.nn.Module) -> dict[str, float]:
            return evaluate_split(predictor, val_loader, len(data.classes), data.classes, device)

        groups = build_param_groups(
            model, lr=config.lr, weight_decay=config.weight_decay, layer_decay=config.layer_decay,
            backbone_lr_mult=config.backbone_lr_mult, backbone_prefix=ParsingModel.backbone_prefix,
        )  # fmt: skip
        result = fit(
            model, train_loader, step_fn, config=config, run_dir=request.run_dir, device=device,
            evaluate_fn=evaluate_fn, primary_metric=PRIMARY_METRIC, best="max", param_groups=groups,
            resume=request.resume, progress=request.progress, seed=request.seed,
        )  # fmt: skip
        metrics = {k: float(v) for k, v in result.metrics.items()}
        log.info(
            "%s %s: mIoU %.2f (epoch %d)",
            request.dataset, request.protocol, metrics[PRIMARY_METRIC], result.selected_epoch,
        )  # fmt: skip
        return EvalResult(
            metrics=metrics,
            primary_metric=PRIMARY_METRIC,
            extra={
                "train_images": len(train_set), "val_images": len(data.val),
                "selected_epoch": result.selected_epoch, "best_epoch": result.best_epoch,
                "flip": settings.flip, "scales": list(settings.scales),
            },
        )  # fmt: skip

    @staticmethod
    def val_loader(
        data: ParsingSet, img_size: tuple[int, int], settings: EvalSettings, device: torch.device
    ) -> DataLoader:
        """The val split resized to ``img_size``, labels at their own resolution (a list per batch)."""
        return DataLoader(
            ParsingImages(data.val.images, data.val.labels, img_size, train=False),
            batch_size=settings.batch_size, num_workers=loader_workers(settings.num_workers),
            collate_fn=collate_eval, pin_memory=device.type == "cuda",
        )  # fmt: skip
