"""The attribute task for ``saip evaluate``: protocols ``finetune`` and ``linear``, on the task template.

Every key it reads is in ``configs/evaluate/defaults/attribute.yaml``. ``finetune`` trains backbone + head
(Linear -> BatchNorm1d) with the positive-ratio weighted BCE through the engine; ``linear`` is the shared
feature probe (:mod:`saip_bench.evaluate.linear`): features of the frozen backbone extracted once, the head
trained on them. Metrics are reported in percent: ``mA`` (primary), and the instance-based ``acc``, ``prec``,
``recall``, ``f1``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from saip_bench.datasets import DATASETS
from saip_bench.errors import ConfigError, DataFormatError
from saip_bench.evaluate.adapter import EvalRequest
from saip_bench.evaluate.images import eval_transform, train_transform
from saip_bench.evaluate.linear import apply_batched, extract_features, save_head, train_head
from saip_bench.evaluate.task import Task
from saip_bench.tasks.attribute.data.common import AttributeSet
from saip_bench.tasks.attribute.images import AttributeImages
from saip_bench.tasks.attribute.losses import positive_ratio
from saip_bench.tasks.attribute.metrics import pedestrian_metrics
from saip_bench.tasks.attribute.model import AttributeHead, AttributeModel

if TYPE_CHECKING:
    from saip_bench.backbones import Backbone


def to_percent(metrics: dict[str, float]) -> dict[str, float]:
    """Fractions -> percent, as the field reports attribute metrics."""
    return {key: 100.0 * value for key, value in metrics.items()}


@dataclass
class AttributeData:
    """The two splits a run reads: image paths and ``(n, A)`` 0/1 labels, and the training positive ratios."""

    attributes: AttributeSet
    train_paths: list[Path]
    train_labels: np.ndarray
    test_paths: list[Path]
    test_labels: np.ndarray
    pos_ratio: np.ndarray


class AttributeAdapter(Task):
    """Pedestrian attribute recognition on PA-100K and PETA-zs."""

    name = "attribute"
    protocols = ("finetune", "linear")
    engine_protocols = ("finetune",)
    min_batch = 2  # the head's BatchNorm1d

    def build_data(self, request: EvalRequest) -> AttributeData:
        """The dataset through the registry; its training split needs 2 images (the head's BatchNorm)."""
        cfg = request.config.eval
        data: AttributeSet = DATASETS.get(request.dataset).load(request.data_dir)
        for split in (cfg.train_split, cfg.test_split):
            if split not in data.partition:
                raise ConfigError(
                    f"{request.dataset} has no split {split!r}; splits: {', '.join(data.partition)}"
                )
        train_paths, train_labels = data.split(cfg.train_split)
        if len(train_paths) < 2:
            raise DataFormatError(request.data_dir, f"split {cfg.train_split!r} has fewer than 2 images")
        test_paths, test_labels = data.split(cfg.test_split)
        return AttributeData(
            data, train_paths, train_labels, test_paths, test_labels, positive_ratio(train_labels)
        )

    def build_model(self, request: EvalRequest, backbone: Backbone, data: AttributeData) -> nn.Module:
        """Backbone + :class:`AttributeHead`, the loss weighted by the training split's positive ratios."""
        head = AttributeHead(
            int(backbone.embed_dim), data.attributes.num_attrs, bn=bool(request.config.head.bn)
        )
        return AttributeModel(backbone, head, pos_ratio=data.pos_ratio)

    def train_set(self, request: EvalRequest, data: AttributeData) -> AttributeImages:
        """Training crops with the light person augmentation (``augment.pad``, ``augment.flip``)."""
        augment = request.config.augment
        transform = train_transform(request.img_size, pad=int(augment.pad), flip=float(augment.flip))
        return AttributeImages(data.train_paths, data.train_labels, transform)

    def train_step(
        self, request: EvalRequest, model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """The positive-ratio weighted BCE of one batch (the model computes it)."""
        images, targets = batch
        return model(images, targets)

    def evaluate(self, request: EvalRequest, model: nn.Module, data: AttributeData) -> dict[str, float]:
        """Label-based mA and instance metrics of the test split's sigmoid scores (``eval.threshold``)."""
        scores = extract_features(
            lambda images: torch.sigmoid(model(images).float()),
            self._images(request, data.test_paths, data.test_labels),
            device=request.device, batch_size=int(request.config.eval.batch_size),
            workers=int(request.config.data.workers),
        )  # fmt: skip
        return self._metrics(request, data, scores)

    def linear(self, request: EvalRequest, model: nn.Module, data: AttributeData) -> tuple[dict, None]:
        """The feature probe: the backbone frozen, its features cached once, the head trained on them."""
        cfg = request.config
        device = torch.device(request.device)
        backbone = self.backbone_of(model).requires_grad_(False)
        feats = {}
        for split, paths, labels in (
            (cfg.eval.train_split, data.train_paths, data.train_labels),
            (cfg.eval.test_split, data.test_paths, data.test_labels),
        ):
            feats[split] = extract_features(
                backbone, self._images(request, paths, labels), device=device,
                batch_size=int(cfg.eval.batch_size), workers=int(cfg.data.workers), progress=request.progress,
                description=f"features {split}",
            )  # fmt: skip
        train_feats = feats[cfg.eval.train_split].to(device)
        train_labels = torch.as_tensor(data.train_labels, dtype=torch.float32, device=device)

        def loss_fn(head: nn.Module, rows: torch.Tensor) -> torch.Tensor:
            rows = rows.to(device)
            return model.criterion(head(train_feats[rows]), train_labels[rows])

        probe = cfg.linear
        losses = train_head(
            model.head, loss_fn, len(train_feats), steps=int(probe.steps), lr=float(probe.lr),
            weight_decay=float(probe.weight_decay), batch_size=int(probe.batch_size), seed=request.seed,
            progress=request.progress, description="linear head",
        )  # fmt: skip
        scores = apply_batched(
            lambda f: torch.sigmoid(model.head(f)), feats[cfg.eval.test_split], device=device
        )
        metrics = self._metrics(request, data, scores)
        save_head(
            request.run_dir, "linear_head.pt", model.head.state_dict(),
            {"metrics": metrics, "attributes": list(data.attributes.attr_names),
             "feature_dim": int(train_feats.shape[1]), "final_loss": losses[-1] if losses else None},
        )  # fmt: skip
        return metrics, None

    def describe(self, request: EvalRequest, data: AttributeData) -> dict[str, Any]:
        return {"train_images": len(data.train_paths), "test_images": len(data.test_paths)}

    # ------------------------------------------------------------------------------------------- helpers
    @staticmethod
    def _images(request: EvalRequest, paths: list[Path], labels: np.ndarray) -> AttributeImages:
        """Evaluation crops of ``paths`` (resize + normalise)."""
        return AttributeImages(paths, labels, eval_transform(request.img_size))

    @staticmethod
    def _metrics(request: EvalRequest, data: AttributeData, scores: torch.Tensor) -> dict[str, float]:
        threshold = float(request.config.eval.threshold)
        return to_percent(pedestrian_metrics(data.test_labels, scores.numpy(), threshold=threshold))
