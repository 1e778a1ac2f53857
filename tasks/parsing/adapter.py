"""The parsing task for ``saip evaluate``: protocols ``finetune`` and ``linear`` on LIP and CIHP.

A :class:`~saip_bench.evaluate.task.Task`: the template checks, seeds, builds, trains through
:func:`saip_bench.engine.fit` and packages the result; this file supplies the data, the model, the loss step
and the evaluation. ``finetune`` trains backbone + pyramid + head; ``linear`` (the template's) freezes the
backbone and trains the pyramid and head (a dense "linear" probe: the backbone's features are fixed). The loss
is pixel-wise (255 ignored; plain cross-entropy as the field trains, or OHEM / class-balanced CE, see
:mod:`saip_bench.tasks.parsing.loss`) on the logits upsampled to the crop size.

Recipe keys and their meaning: ``configs/evaluate/defaults/parsing.yaml`` (``data``, ``eval``, ``head``,
``loader``, ``augment``, ``loss``); ``train`` is the engine's :class:`~saip_bench.engine.EngineConfig`.

Evaluation letterboxes each image into the input size (aspect kept, as in training) and predicts at its
original label resolution. ``eval.flip`` averages the logits with the mirrored image's (left/right classes
swapped back); ``eval.scales`` runs the network at multiples of the input size (each side rounded to a
multiple of 32) and averages the logits. Metrics come from one confusion matrix
over the val set (see :mod:`saip_bench.tasks.parsing.metrics`): ``mIoU`` (primary), ``aAcc``, ``mAcc`` and
``IoU.<class>``, in percent.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from saip_bench.datasets import DATASETS
from saip_bench.engine import loader_workers
from saip_bench.errors import ConfigError, DataFormatError
from saip_bench.evaluate.adapter import EvalRequest
from saip_bench.evaluate.protocols import scaled_size
from saip_bench.evaluate.task import Task
from saip_bench.tasks.parsing.data import IGNORE_INDEX, ParsingSet, flip_permutation
from saip_bench.tasks.parsing.images import ParsingImages, collate_eval, fit_size
from saip_bench.tasks.parsing.loss import check_loss, parsing_loss
from saip_bench.tasks.parsing.metrics import all_reduce_confusion, segmentation_metrics, update_confusion
from saip_bench.tasks.parsing.model import ParsingModel

SIZE_STEP = 32  # multi-scale sizes are rounded to the pyramid's coarsest stride


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


class ParsingAdapter(Task):
    """Human parsing on LIP and CIHP."""

    name = "parsing"
    protocols = ("finetune", "linear")
    backbone_prefix = "pyramid.backbone."  # the backbone sits inside the feature pyramid
    min_batch = 2  # BatchNorm in the head

    def check(self, request: EvalRequest) -> None:
        """The template's checks, ``eval.scales`` and the ``loss`` section."""
        super().check(request)
        cfg = request.config
        scales = list(cfg.eval.scales)
        if not scales or any(float(s) <= 0 for s in scales):
            raise ConfigError(f"recipe eval.scales must be positive multiples, got {scales}")
        args = self._loss_args(request)
        check_loss(args.pop("name"), **args)

    def build_data(self, request: EvalRequest) -> ParsingSet:
        """The dataset through the registry: a train and a val split of image/label pairs."""
        data = DATASETS.get(request.dataset).load(request.data_dir)
        if len(data.train) < 1 or len(data.val) < 1:
            raise DataFormatError(request.data_dir, "parsing needs at least one train and one val image")
        return data

    def build_model(self, request: EvalRequest, backbone: Any, data: ParsingSet) -> ParsingModel:
        """Backbone -> pyramid -> fusion head; the backbone frozen (and kept in eval mode) for ``linear``."""
        head = request.config.head
        return ParsingModel(
            backbone, len(data.classes), pyramid_channels=int(head.pyramid_channels),
            head_channels=int(head.head_channels), dropout=float(head.dropout),
            freeze_backbone=request.protocol == "linear",
        )  # fmt: skip

    def train_set(self, request: EvalRequest, data: ParsingSet) -> ParsingImages:
        """Training pairs with CE2P/SCHP's random scale, crop and left/right-swapping flip."""
        augment = request.config.augment
        return ParsingImages(
            data.train.images, data.train.labels, self._size(request), train=True,
            scale_range=tuple(float(v) for v in augment.scale_range), flip=float(augment.flip),
            seed=request.seed,
        )  # fmt: skip

    def train_step(
        self, request: EvalRequest, model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """The recipe's pixel-wise loss on the logits upsampled to the crop."""
        images, targets = batch
        logits = model(images).float()
        logits = F.interpolate(logits, size=targets.shape[-2:], mode="bilinear", align_corners=False)
        return {"loss": parsing_loss(logits, targets, **self._loss_args(request))}

    def evaluate(self, request: EvalRequest, model: nn.Module, data: ParsingSet) -> dict[str, float]:
        """Val-split metrics with the recipe's flip and scales (see module docstring)."""
        cfg = request.config
        device = torch.device(request.device)
        size = self._size(request)
        predictor = Predictor(
            model, size, flip=bool(cfg.eval.flip), scales=tuple(float(s) for s in cfg.eval.scales)
        )  # type: ignore[arg-type]
        loader = DataLoader(
            ParsingImages(data.val.images, data.val.labels, size, train=False),
            batch_size=int(cfg.eval.batch_size), num_workers=loader_workers(int(cfg.data.workers)),
            collate_fn=collate_eval, pin_memory=device.type == "cuda",
        )  # fmt: skip
        return evaluate_split(predictor, loader, len(data.classes), data.classes, device)

    def describe(self, request: EvalRequest, data: ParsingSet) -> dict[str, Any]:
        cfg = request.config.eval
        return {
            "train_images": len(data.train), "val_images": len(data.val), "flip": bool(cfg.flip),
            "scales": [float(s) for s in cfg.scales],
        }  # fmt: skip

    @staticmethod
    def _size(request: EvalRequest) -> tuple[int, int]:
        return int(request.img_size[0]), int(request.img_size[1])

    @staticmethod
    def _loss_args(request: EvalRequest) -> dict[str, Any]:
        """The ``loss`` section as :func:`~saip_bench.tasks.parsing.loss.parsing_loss`'s keywords."""
        loss = request.config.loss
        return {
            "name": str(loss.name), "thresh": float(loss.thresh), "min_kept": int(loss.min_kept),
            "balance_c": float(loss.balance_c),
        }  # fmt: skip
