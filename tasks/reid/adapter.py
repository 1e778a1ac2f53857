"""The re-ID task adapter: ``finetune`` (BNNeck, ID + triplet losses, P x K batches) and ``frozen`` retrieval.

Recipe keys (see ``configs/evaluate/reid_*.yaml``): ``data`` (mean, std, workers), ``eval`` (batch_size,
flip, distance, feat, rerank, max_rank, max_query, max_gallery), ``sampler`` (p, k), ``augment`` (flip, pad,
erasing), ``loss`` (id_weight, triplet_weight, smoothing, margin), ``train`` (the engine's keys).
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

import torch
from torch.utils.data import DataLoader

from saip_bench.engine import EngineConfig, fit, loader_workers
from saip_bench.errors import ConfigError
from saip_bench.evaluate.adapter import EvalRequest, EvalResult
from saip_bench.evaluate.images import IMAGENET_MEAN, IMAGENET_STD
from saip_bench.tasks.reid.dataset import ReidImages, build_transforms
from saip_bench.tasks.reid.evaluation import evaluate_model, subset_eval
from saip_bench.tasks.reid.losses import id_loss, triplet_loss
from saip_bench.tasks.reid.model import ReidModel
from saip_bench.tasks.reid.sampler import PKSampler

if TYPE_CHECKING:
    from saip_bench.backbones import Backbone

log = logging.getLogger(__name__)

LOADERS = {
    "market1501": "saip_bench.tasks.reid.data.market1501:load_market1501",
    "msmt17": "saip_bench.tasks.reid.data.msmt17:load_msmt17",
}
SECTIONS: dict[str, dict[str, Any]] = {
    "data": {"mean": IMAGENET_MEAN, "std": IMAGENET_STD, "workers": 4},
    "eval": {
        "batch_size": 128,
        "flip": True,
        "distance": "euclidean",
        "feat": "bn",
        "rerank": False,
        "max_rank": 50,
        "max_query": None,
        "max_gallery": None,
    },
    "sampler": {"p": 16, "k": 4},
    "augment": {"flip": 0.5, "pad": 10, "erasing": 0.5},
    "loss": {"id_weight": 1.0, "triplet_weight": 1.0, "smoothing": 0.1, "margin": 0.3},
}
_TOP = {"img_size", "seed", "protocol", "budget", "train", "task", "dataset", *SECTIONS}


def recipe_section(recipe: dict[str, Any], name: str) -> dict[str, Any]:
    """One recipe section over its defaults; an unknown key is a :class:`ConfigError`."""
    given = recipe.get(name) or {}
    unknown = sorted(set(given) - set(SECTIONS[name]))
    if unknown:
        raise ConfigError(
            f"re-ID recipe section {name!r}: unknown key(s) {', '.join(unknown)}; "
            f"valid: {', '.join(SECTIONS[name])}"
        )
    return {**SECTIONS[name], **given}


def load_splits(dataset: str, root: Any) -> Any:
    """The dataset's :class:`ReidSplits` (train / query / gallery lists of ``(path, pid, camid)``)."""
    if dataset not in LOADERS:
        raise ConfigError(f"re-ID has no loader for {dataset!r}; valid: {', '.join(LOADERS)}")
    module, _, attr = LOADERS[dataset].partition(":")
    return getattr(importlib.import_module(module), attr)(root)


class ReidAdapter:
    """Person re-identification on Market-1501 and MSMT17."""

    task = "reid"
    protocols = ("finetune", "frozen")

    def run(self, request: EvalRequest, backbone: Backbone) -> EvalResult:
        """Fine-tune (or not) ``backbone`` and return mAP / R1 / R5 / R10 in percent."""
        recipe = request.recipe
        unknown = sorted(set(recipe) - _TOP)
        if unknown:
            raise ConfigError(f"re-ID recipe: unknown key(s) {', '.join(unknown)}")
        if request.protocol not in self.protocols:
            raise ConfigError(
                f"re-ID supports protocols {', '.join(self.protocols)}, not {request.protocol!r}"
            )
        data, ev = recipe_section(recipe, "data"), recipe_section(recipe, "eval")
        device = torch.device(request.device)
        splits = load_splits(request.dataset, request.data_dir)
        query, gallery = subset_eval(
            splits.query,
            splits.gallery,
            max_query=ev["max_query"],
            max_gallery=ev["max_gallery"],
            seed=request.seed,
        )

        def evaluate_fn(model: torch.nn.Module) -> dict[str, float]:
            return evaluate_model(
                model,
                query,
                gallery,
                img_size=request.img_size,
                device=device,
                distance=ev["distance"],
                rerank=bool(ev["rerank"]),
                flip=bool(ev["flip"]),
                batch_size=int(ev["batch_size"]),
                workers=int(data["workers"]),
                max_rank=int(ev["max_rank"]),
                mean=data["mean"],
                std=data["std"],
                progress=request.progress,
            )

        extra: dict[str, Any] = {
            "train_images": len(splits.train),
            "query": len(query),
            "gallery": len(gallery),
        }
        torch.manual_seed(request.seed)
        if request.protocol == "frozen":
            backbone.requires_grad_(False)
            model = ReidModel(backbone, backbone.embed_dim, 0, feat="pre").to(device)
            return EvalResult(evaluate_fn(model), "mAP", extra)

        sampler_cfg, aug = recipe_section(recipe, "sampler"), recipe_section(recipe, "augment")
        loss_cfg = recipe_section(recipe, "loss")
        config = EngineConfig.from_dict(recipe.get("train") or {}, source="re-ID recipe train section")
        transform = build_transforms(request.img_size, train=True, mean=data["mean"], std=data["std"], **aug)
        train_set = ReidImages(splits.train, transform, relabel=True)
        p = int(sampler_cfg["p"])
        if train_set.num_ids < p:
            log.warning(
                "P=%d but only %d training identities: using P=%d", p, train_set.num_ids, train_set.num_ids
            )
            p = train_set.num_ids
        world, rank = 1, 0
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            world, rank = torch.distributed.get_world_size(), torch.distributed.get_rank()
        sampler = PKSampler(
            train_set.labels, p=p, k=int(sampler_cfg["k"]), seed=request.seed, num_replicas=world, rank=rank
        )
        loader = DataLoader(
            train_set,
            batch_sampler=sampler,
            num_workers=loader_workers(data["workers"]),
            pin_memory=device.type == "cuda",
            persistent_workers=loader_workers(data["workers"]) > 0,
        )
        model = ReidModel(backbone, backbone.embed_dim, train_set.num_ids, feat=str(ev["feat"])).to(device)
        backbone.requires_grad_(True)
        margin = loss_cfg["margin"]

        def step_fn(net: torch.nn.Module, batch: Any) -> dict[str, torch.Tensor]:
            images, labels = batch[0], batch[1]
            logits, feat = net(images)
            l_id = id_loss(logits, labels, smoothing=float(loss_cfg["smoothing"]))
            l_tri = triplet_loss(feat, labels, margin=None if margin is None else float(margin))
            total = float(loss_cfg["id_weight"]) * l_id + float(loss_cfg["triplet_weight"]) * l_tri
            return {"loss": total, "id": l_id.detach(), "triplet": l_tri.detach()}

        result = fit(
            model,
            loader,
            step_fn,
            config=config,
            run_dir=request.run_dir,
            device=device,
            evaluate_fn=evaluate_fn,
            primary_metric="mAP",
            best="max",
            resume=request.resume,
            progress=request.progress,
        )
        extra.update(
            selected_epoch=result.selected_epoch, best_epoch=result.best_epoch, history=result.history
        )
        return EvalResult(result.metrics, "mAP", extra)
