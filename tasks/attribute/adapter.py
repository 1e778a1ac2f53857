"""The attribute task's adapter for ``saip evaluate``: protocols ``finetune`` and ``linear``.

Recipe keys this task reads (besides ``img_size``/``seed``, used by dispatch, and ``train``, the engine's)::

    eval:     {batch_size: 128, num_workers: 2, threshold: 0.5, train_split: trainval, test_split: test}
    head:     {bn: true}                          # Linear -> BatchNorm1d on the logits
    loader:   {batch_size: 64}                    # finetune training batch
    augment:  {pad: 10, flip: 0.5}                # finetune training augmentation
    linear:   {steps: 300, lr: 0.001, weight_decay: 0.0, batch_size: 256}

Metrics are reported in percent: ``mA`` (primary), and the instance-based ``acc``, ``prec``, ``recall``,
``f1``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from saip_bench.engine import loader_workers, make_train_loader
from saip_bench.errors import ConfigError, DataFormatError
from saip_bench.evaluate.adapter import EvalRequest, EvalResult, check_request
from saip_bench.evaluate.images import eval_transform, train_transform
from saip_bench.evaluate.protocols import AugmentSettings, LoaderSettings, recipe_settings
from saip_bench.io import atomic_path, atomic_write_json
from saip_bench.tasks.attribute.data import AttributeSet, load_attribute_set
from saip_bench.tasks.attribute.images import AttributeImages
from saip_bench.tasks.attribute.linear import extract_features, predict_scores, train_linear_head
from saip_bench.tasks.attribute.losses import weighted_bce
from saip_bench.tasks.attribute.metrics import pedestrian_metrics
from saip_bench.tasks.attribute.model import AttributeHead, AttributeModel

log = logging.getLogger(__name__)

PRIMARY_METRIC = "mA"


@dataclass(frozen=True)
class EvalSettings:
    batch_size: int = 128
    num_workers: int = 2
    threshold: float = 0.5
    train_split: str = "trainval"
    test_split: str = "test"


@dataclass(frozen=True)
class HeadSettings:
    bn: bool = True


@dataclass(frozen=True)
class LinearSettings:
    steps: int = 300
    lr: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 256


def to_percent(metrics: dict[str, float]) -> dict[str, float]:
    """Fractions -> percent, as the field reports attribute metrics."""
    return {key: 100.0 * value for key, value in metrics.items()}


class AttributeAdapter:
    """Pedestrian attribute recognition on PA-100K and PETA-zs."""

    task = "attribute"
    protocols = ("finetune", "linear")

    def run(self, request: EvalRequest, backbone: Any) -> EvalResult:
        """Evaluate ``backbone`` on ``request.dataset`` with ``request.protocol`` (see module docstring)."""
        check_request(self, request)
        settings = recipe_settings(request.recipe, "eval", EvalSettings)
        head_settings = recipe_settings(request.recipe, "head", HeadSettings)
        data = load_attribute_set(request.dataset, request.data_dir)
        for split in (settings.train_split, settings.test_split):
            if split not in data.partition:
                raise ConfigError(
                    f"{request.dataset} has no split {split!r}; splits: {', '.join(data.partition)}"
                )
        if len(data.partition[settings.train_split]) < 2:
            raise DataFormatError(request.data_dir, f"split {settings.train_split!r} has fewer than 2 images")
        if request.protocol == "linear":
            return self._linear(request, backbone, data, settings, head_settings)
        return self._finetune(request, backbone, data, settings, head_settings)

    def _loader(
        self, data: AttributeSet, split: str, transform: Any, settings: EvalSettings, device: str
    ) -> DataLoader:
        paths, labels = data.split(split)
        return DataLoader(
            AttributeImages(paths, labels, transform),
            batch_size=settings.batch_size,
            num_workers=loader_workers(settings.num_workers),
            pin_memory=torch.device(device).type == "cuda",
        )

    def _linear(
        self,
        request: EvalRequest,
        backbone: Any,
        data: AttributeSet,
        settings: EvalSettings,
        head: HeadSettings,
    ) -> EvalResult:
        probe = recipe_settings(request.recipe, "linear", LinearSettings)
        device = torch.device(request.device)
        backbone.requires_grad_(False)
        transform = eval_transform(request.img_size)
        train_feats, train_labels = extract_features(
            backbone,
            self._loader(data, settings.train_split, transform, settings, request.device),
            device=device,
            progress=request.progress,
            description=f"features {settings.train_split}",
        )
        test_feats, test_labels = extract_features(
            backbone,
            self._loader(data, settings.test_split, transform, settings, request.device),
            device=device,
            progress=request.progress,
            description=f"features {settings.test_split}",
        )
        pos_ratio = (train_labels.numpy() == 1).mean(axis=0).astype(np.float32)
        head_module, losses = train_linear_head(
            train_feats, train_labels, pos_ratio=pos_ratio, steps=probe.steps, lr=probe.lr,
            weight_decay=probe.weight_decay, batch_size=probe.batch_size, bn=head.bn, seed=request.seed,
            device=device, progress=request.progress,
        )  # fmt: skip
        scores = predict_scores(head_module, test_feats)
        metrics = to_percent(pedestrian_metrics(test_labels.numpy(), scores, threshold=settings.threshold))
        self._save(request.run_dir, head_module.state_dict(), metrics, data)
        log.info("%s linear probe: mA %.2f after %d steps", request.dataset, metrics["mA"], probe.steps)
        extra = {
            "train_images": len(train_feats),
            "test_images": len(test_feats),
            "feature_dim": int(train_feats.shape[1]),
            "steps": probe.steps,
            "final_loss": losses[-1] if losses else None,
        }
        return EvalResult(metrics=metrics, primary_metric=PRIMARY_METRIC, extra=extra)

    def _finetune(
        self,
        request: EvalRequest,
        backbone: Any,
        data: AttributeSet,
        settings: EvalSettings,
        head: HeadSettings,
    ) -> EvalResult:
        from saip_bench.engine import EngineConfig, fit

        if "train" not in request.recipe:
            raise ConfigError("the finetune protocol needs a 'train' section in its recipe")
        config = EngineConfig.from_dict(request.recipe["train"])
        loader_settings = recipe_settings(request.recipe, "loader", LoaderSettings)
        augment = recipe_settings(request.recipe, "augment", AugmentSettings)
        device = torch.device(request.device)
        with torch.random.fork_rng(devices=[]):  # a seeded head without resetting the caller's global RNG
            torch.manual_seed(request.seed)
            attr_head = AttributeHead(int(backbone.embed_dim), data.num_attrs, bn=head.bn)
        model = AttributeModel(backbone, attr_head).to(device)

        paths, labels = data.split(settings.train_split)
        train_set = AttributeImages(
            paths, labels, train_transform(request.img_size, pad=augment.pad, flip=augment.flip)
        )
        train_loader = make_train_loader(
            train_set, batch_size=loader_settings.batch_size, seed=request.seed, min_batch=2,
            num_workers=settings.num_workers, device=device,
        )  # fmt: skip
        pos_ratio = torch.as_tensor((labels == 1).mean(axis=0), dtype=torch.float32, device=device)
        test_loader = self._loader(
            data, settings.test_split, eval_transform(request.img_size), settings, request.device
        )

        def step_fn(
            train_model: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor]
        ) -> dict[str, torch.Tensor]:
            images, targets = batch
            return {"loss": weighted_bce(train_model(images).float(), targets, pos_ratio)}

        def evaluate_fn(eval_model: torch.nn.Module) -> dict[str, float]:
            scores, gts = [], []
            for images, targets in test_loader:
                scores.append(torch.sigmoid(eval_model(images.to(device)).float()).cpu())
                gts.append(targets)
            gt = torch.cat(gts).numpy()
            return to_percent(pedestrian_metrics(gt, torch.cat(scores).numpy(), threshold=settings.threshold))

        result = fit(
            model, train_loader, step_fn, config=config, run_dir=request.run_dir, device=device,
            evaluate_fn=evaluate_fn, primary_metric=PRIMARY_METRIC, best="max", resume=request.resume,
            progress=request.progress,
        )  # fmt: skip
        metrics = {k: float(v) for k, v in result.metrics.items()}
        log.info(
            "%s finetune: mA %.2f (epoch %d)", request.dataset, metrics[PRIMARY_METRIC], result.selected_epoch
        )
        return EvalResult(
            metrics=metrics,
            primary_metric=PRIMARY_METRIC,
            extra={
                "train_images": len(train_set), "test_images": len(test_loader.dataset),
                "selected_epoch": result.selected_epoch, "best_epoch": result.best_epoch,
            },
        )  # fmt: skip

    @staticmethod
    def _save(
        run_dir: Path, head_state: dict[str, torch.Tensor], metrics: dict[str, float], data: AttributeSet
    ) -> None:
        """The trained linear head and its metrics, beside the dispatch's recipe.json."""
        if (
            torch.distributed.is_available()
            and torch.distributed.is_initialized()
            and torch.distributed.get_rank()
        ):
            return
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        with atomic_path(run_dir / "linear_head.pt") as tmp:
            torch.save({k: v.cpu() for k, v in head_state.items()}, tmp)
        atomic_write_json(run_dir / "metrics.json", {"metrics": metrics, "attributes": list(data.attr_names)})
