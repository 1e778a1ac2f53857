"""The re-ID task: ``finetune`` (BNNeck, ID + triplet losses, P x K batches) and ``frozen`` retrieval.

A :class:`~saip_bench.evaluate.task.Task`: the template checks, seeds, builds, trains and packages the
result; this file supplies the re-ID data (train list, query/gallery subset), the model (backbone + BNNeck),
the P x K training loader, the loss step and the retrieval metrics. ``frozen`` is the template's own: the
model as built (no classifier) ranks the gallery with the backbone's feature.

Recipe keys and their meaning: ``configs/evaluate/defaults/reid.yaml`` (``data``, ``eval``, ``sampler``,
``augment``, ``loss``); ``train`` is the engine's :class:`~saip_bench.engine.EngineConfig`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from saip_bench.datasets import DATASETS
from saip_bench.engine import make_train_loader
from saip_bench.engine.distributed import rank, world_size
from saip_bench.errors import ConfigError
from saip_bench.evaluate.adapter import EvalRequest
from saip_bench.evaluate.task import Task
from saip_bench.tasks.reid.dataset import ReidImages, build_transforms
from saip_bench.tasks.reid.evaluation import DISTANCES, evaluate_model, subset_eval
from saip_bench.tasks.reid.losses import id_loss, triplet_loss
from saip_bench.tasks.reid.model import FEATURES, ReidModel
from saip_bench.tasks.reid.sampler import PKSampler

if TYPE_CHECKING:
    from saip_bench.backbones import Backbone

log = logging.getLogger(__name__)

Item = tuple[Path, int, int]


@dataclass(frozen=True)
class ReidData:
    """What a re-ID run reads: the training list and the (possibly subset) query and gallery lists."""

    train: list[Item]
    query: list[Item]
    gallery: list[Item]

    @property
    def num_ids(self) -> int:
        """Training identities (the classifier's width)."""
        return len({int(pid) for _, pid, _ in self.train})


class ReidAdapter(Task):
    """Person re-identification on Market-1501 and MSMT17: mAP / R1 / R5 / R10 in percent."""

    name = "reid"
    protocols = ("finetune", "frozen")

    def check(self, request: EvalRequest) -> None:
        """The template's checks, and the ``eval`` choices the run would otherwise reject late."""
        super().check(request)
        cfg = request.config.eval
        if cfg.distance not in DISTANCES:
            valid = ", ".join(DISTANCES)
            raise ConfigError(f"re-ID eval.distance must be one of {valid}, not {cfg.distance!r}")
        if cfg.feat not in FEATURES:
            raise ConfigError(f"re-ID eval.feat must be one of {', '.join(FEATURES)}, not {cfg.feat!r}")

    def build_data(self, request: EvalRequest) -> ReidData:
        """The dataset's splits through the registry; smoke budgets cut query/gallery (``eval.max_*``)."""
        splits = DATASETS.get(request.dataset).load(request.data_dir)
        cfg = request.config.eval
        query, gallery = subset_eval(
            splits.query, splits.gallery, max_query=cfg.max_query, max_gallery=cfg.max_gallery,
            seed=request.seed,
        )  # fmt: skip
        return ReidData(list(splits.train), query, gallery)

    def build_model(self, request: EvalRequest, backbone: Backbone, data: ReidData) -> nn.Module:
        """Backbone + BNNeck; a classifier over the training identities only when the protocol trains."""
        classes = data.num_ids if request.protocol == "finetune" else 0
        return ReidModel(backbone, backbone.embed_dim, classes, feat=str(request.config.eval.feat))

    def train_set(self, request: EvalRequest, data: ReidData) -> ReidImages:
        """Training crops with TransReID's augmentation, pids relabelled ``0..num_ids-1``."""
        cfg = request.config
        transform = build_transforms(
            request.img_size, train=True, mean=list(cfg.data.mean), std=list(cfg.data.std),
            flip=float(cfg.augment.flip), pad=int(cfg.augment.pad), erasing=float(cfg.augment.erasing),
        )  # fmt: skip
        return ReidImages(data.train, transform, relabel=True)

    def train_loader(self, request: EvalRequest, data: ReidData) -> Iterable[Any]:
        """P x K batches (``sampler.p`` identities, ``sampler.k`` images each), split across DDP ranks."""
        train_set = self.train_set(request, data)
        p = int(request.config.sampler.p)
        if train_set.num_ids < p:
            log.warning("P=%d but only %d training identities: using all", p, train_set.num_ids)
            p = train_set.num_ids
        sampler = PKSampler(
            train_set.labels, p=p, k=int(request.config.sampler.k), seed=request.seed,
            num_replicas=world_size(), rank=rank(),
        )  # fmt: skip
        return make_train_loader(  # seeded per-sample augmentation: the batches resume exactly
            train_set, batch_size=sampler.p * sampler.k, batch_sampler=sampler, seed=request.seed,
            num_workers=int(request.config.data.workers), device=request.device, persistent_workers=True,
        )  # fmt: skip

    def train_step(self, request: EvalRequest, model: nn.Module, batch: Any) -> dict[str, torch.Tensor]:
        """``id_weight`` x label-smoothed ID loss + ``triplet_weight`` x batch-hard triplet loss."""
        cfg = request.config.loss
        images, labels = batch[0], batch[1]
        logits, feat = model(images)
        l_id = id_loss(logits, labels, smoothing=float(cfg.smoothing))
        l_tri = triplet_loss(feat, labels, margin=None if cfg.margin is None else float(cfg.margin))
        total = float(cfg.id_weight) * l_id + float(cfg.triplet_weight) * l_tri
        return {"loss": total, "id": l_id.detach(), "triplet": l_tri.detach()}

    def evaluate(self, request: EvalRequest, model: nn.Module, data: ReidData) -> dict[str, float]:
        """Rank the gallery for every query (flip-averaged features, ``eval.distance``, optional rerank)."""
        cfg = request.config
        return evaluate_model(
            model, data.query, data.gallery, img_size=request.img_size, device=torch.device(request.device),
            distance=str(cfg.eval.distance), rerank=bool(cfg.eval.rerank), flip=bool(cfg.eval.flip),
            batch_size=int(cfg.eval.batch_size), workers=int(cfg.data.workers),
            max_rank=int(cfg.eval.max_rank), mean=list(cfg.data.mean), std=list(cfg.data.std),
            progress=request.progress,
        )  # fmt: skip

    def describe(self, request: EvalRequest, data: ReidData) -> dict[str, Any]:
        return {"train_images": len(data.train), "query": len(data.query), "gallery": len(data.gallery)}
