"""The task template: one ``run`` for every task, the task supplies only its data, model, loss and metrics.

The idea of torchreid's ``Engine`` and mmengine's ``Runner`` (not their code): :meth:`Task.run` is the same
for every task::

    check -> seed -> build data -> build model -> protocol (train through the engine | probe | nothing)
          -> evaluate -> result [-> the same model evaluated at every probe scale]

A task subclasses :class:`Task` and implements the hooks:

- :meth:`Task.build_data` (read its dataset through the registry, validate what the run will read),
- :meth:`Task.build_model` (backbone + head; its new layers are seeded by the template),
- :meth:`Task.train_set` (or :meth:`Task.train_loader` for a special sampler) and :meth:`Task.train_step`,
- :meth:`Task.evaluate` (metrics of a model on the test split),
- optionally :meth:`Task.describe` (facts for the run's log) and :meth:`Task.linear` / :meth:`Task.frozen`
  when a protocol works differently from the defaults below.

The scale probe (``saip evaluate --scales``, :attr:`EvalRequest.probe_scales`) needs nothing of a task: once
the protocol has trained its model at the recipe's size, :meth:`Task.probe` lays the backbone out for each
probe size (:meth:`Backbone.set_img_size`: a ViT's position embeddings resampled) and calls
:meth:`Task.evaluate` on that same model with the request's ``img_size`` and ``scale`` at that size. A task
whose protocol leaves state outside the model that its own metrics used (a cached-feature probe's feature
statistics, say) must put it into the model, so that :meth:`Task.evaluate` reproduces them.

The protocols' defaults: ``finetune`` trains backbone + head through :func:`saip_bench.engine.fit`;
``linear`` freezes the backbone and trains the rest through the same engine (a task whose linear probe runs on
cached features overrides :meth:`Task.linear` with :mod:`saip_bench.evaluate.linear`); ``frozen`` trains
nothing and evaluates the model as built.

Settings come from the resolved recipe, ``request.config``: a read-only OmegaConf view in which every key of
the task's defaults file (``configs/evaluate/defaults/<task>.yaml``) is present, so a task reads
``request.config.eval.batch_size`` and never re-implements defaults or key checks.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from saip_bench.evaluate.adapter import EvalRequest, EvalResult, check_request

if TYPE_CHECKING:
    from saip_bench.backbones import Backbone
    from saip_bench.engine import FitResult

log = logging.getLogger(__name__)


@contextlib.contextmanager
def seeded(seed: int, device: torch.device | str = "cpu") -> Iterator[None]:
    """Seed torch's global RNG (CPU and ``device``'s CUDA generator) for a block, restoring it afterwards."""
    device = torch.device(device)
    forked = []
    if device.type == "cuda":
        forked = [device.index if device.index is not None else torch.cuda.current_device()]
    with torch.random.fork_rng(devices=forked):
        torch.manual_seed(seed)
        yield


class Task:
    """Base class of every task (see the module docstring for the template and its hooks).

    Attributes:
        name: the task name, e.g. ``"reid"``.
        protocols: the protocols it implements, a subset of ``finetune``, ``linear``, ``frozen``.
        engine_protocols: the protocols that train through the engine and so need a ``train`` section.
        backbone_prefix: the parameter-name prefix of the backbone inside the task model (parameter groups,
            layer decay and the ``linear`` freeze use it).
        min_batch: the smallest training batch the task's losses accept (2 for BatchNorm or in-batch pairs).
        fit_seed_offset: the engine runs with ``fit(seed=request.seed + fit_seed_offset)``; 1 where a task's
            published numbers were trained with the RNG seeded one past the model's seed (detection, fashion).
    """

    name: ClassVar[str] = ""
    protocols: ClassVar[tuple[str, ...]] = ("finetune",)
    engine_protocols: ClassVar[tuple[str, ...]] = ("finetune", "linear")
    backbone_prefix: ClassVar[str] = "backbone."
    min_batch: ClassVar[int] = 1
    fit_seed_offset: ClassVar[int] = 0

    # The TaskAdapter protocol's attribute name.
    @property
    def task(self) -> str:
        return self.name

    # ------------------------------------------------------------------------------------------ template
    def run(self, request: EvalRequest, backbone: Backbone) -> EvalResult:
        """Evaluate ``backbone`` as ``request`` says; the same steps for every task (do not override)."""
        self.check(request)
        device = torch.device(request.device)
        with seeded(request.seed, device):
            data = self.build_data(request)
            model = self.build_model(request, backbone, data).to(device)
        protocol = getattr(self, request.protocol)
        metrics, fit_result = protocol(request, model, data)
        result = self.result(request, data, metrics, fit_result)
        if request.probe_scales:
            result.by_scale = self.probe(request, model, data)
        return result

    def check(self, request: EvalRequest) -> None:
        """Refuse a request this task cannot run, before any data is read or model built."""
        check_request(self, request, needs_train=request.protocol in self.engine_protocols)

    # ------------------------------------------------------------------------------------------- protocols
    def finetune(self, request: EvalRequest, model: nn.Module, data: Any) -> tuple[dict, FitResult]:
        """Backbone and head trained through the engine."""
        return self.train_with_engine(request, model, data)

    def linear(self, request: EvalRequest, model: nn.Module, data: Any) -> tuple[dict, FitResult | None]:
        """The backbone frozen, the rest of the model trained through the engine."""
        self.backbone_of(model).requires_grad_(False)
        return self.train_with_engine(request, model, data)

    def frozen(self, request: EvalRequest, model: nn.Module, data: Any) -> tuple[dict, None]:
        """Nothing trained: the model as built is evaluated."""
        model.requires_grad_(False)
        model.eval()
        with torch.no_grad():
            return self.evaluate(request, model, data), None

    def train_with_engine(self, request: EvalRequest, model: nn.Module, data: Any) -> tuple[dict, FitResult]:
        """Train on :meth:`train_loader` with :meth:`train_step`, evaluating with :meth:`evaluate`."""
        from saip_bench.engine import EngineConfig, build_param_groups, fit

        config = EngineConfig.from_dict(dict(request.recipe["train"]))
        groups = build_param_groups(
            model, lr=config.lr, weight_decay=config.weight_decay, layer_decay=config.layer_decay,
            backbone_lr_mult=config.backbone_lr_mult, backbone_prefix=self.backbone_prefix,
        )  # fmt: skip
        result = fit(
            model,
            self.train_loader(request, data),
            lambda train_model, batch: self.train_step(request, train_model, batch),
            config=config,
            run_dir=request.run_dir,
            device=request.device,
            evaluate_fn=lambda eval_model: self.evaluate(request, eval_model, data),
            primary_metric=request.primary_metric,
            best=request.best,
            param_groups=groups,
            resume=request.resume,
            progress=request.progress,
            seed=request.seed + self.fit_seed_offset,
        )
        return result.metrics, result

    # ----------------------------------------------------------------------------------------------- hooks
    def build_data(self, request: EvalRequest) -> Any:
        """Read the dataset (through the dataset registry) and check what the run needs of it."""
        raise NotImplementedError

    def build_model(self, request: EvalRequest, backbone: Backbone, data: Any) -> nn.Module:
        """The task model: ``backbone`` (under :attr:`backbone_prefix`) plus the task's head."""
        raise NotImplementedError

    def train_set(self, request: EvalRequest, data: Any) -> Any:
        """The training dataset the default :meth:`train_loader` batches."""
        raise NotImplementedError

    def collate(self, samples: list[Any]) -> Any:
        """Batch assembly; the default stacks tensors (torch's default collate)."""
        from torch.utils.data import default_collate

        return default_collate(samples)

    def train_loader(self, request: EvalRequest, data: Any) -> Iterable[Any]:
        """The seeded, DDP-aware training loader over :meth:`train_set` (``loader.batch_size``,
        ``data.workers``)."""
        from saip_bench.engine import make_train_loader

        cfg = request.config
        return make_train_loader(
            self.train_set(request, data), batch_size=int(cfg.loader.batch_size), seed=request.seed,
            num_workers=int(cfg.data.workers), device=request.device, min_batch=self.min_batch,
            collate_fn=self.collate,
        )  # fmt: skip

    def train_step(self, request: EvalRequest, model: nn.Module, batch: Any) -> dict[str, torch.Tensor]:
        """Named losses of one batch (already on the device, under autocast); ``"loss"`` is optimised."""
        raise NotImplementedError

    def evaluate(self, request: EvalRequest, model: nn.Module, data: Any) -> dict[str, float]:
        """Metrics of ``model`` on the test split (called in eval mode under ``torch.no_grad``)."""
        raise NotImplementedError

    def describe(self, request: EvalRequest, data: Any) -> dict[str, Any]:
        """Facts about the run worth logging (image counts, ...); not recorded in the results store."""
        return {}

    def probe(self, request: EvalRequest, model: nn.Module, data: Any) -> dict[float, dict[str, float]]:
        """The model the protocol left (trained at ``request.img_size``) evaluated at every probe scale.

        Each probe scale's :meth:`evaluate` sees the request with that scale's ``img_size`` and ``scale``; the
        backbone is laid out for the size first and put back to ``request.img_size`` afterwards.
        """
        from saip_bench.backbones.wrapper import Backbone

        found = [m for m in model.modules() if isinstance(m, Backbone)]
        if len(found) != 1:
            raise RuntimeError(
                f"{self.name}: the scale probe needs one Backbone in the task model, found {len(found)}"
            )
        backbone = found[0]
        original = tuple(backbone.img_size)
        was_training = model.training
        out: dict[float, dict[str, float]] = {}
        model.eval()
        try:
            for scale, size in request.probe_scales:
                at_scale = dataclasses.replace(
                    request, img_size=tuple(size), scale=float(scale), probe_scales=()
                )
                backbone.set_img_size(tuple(size))
                with torch.no_grad():
                    metrics = {
                        key: float(value) for key, value in self.evaluate(at_scale, model, data).items()
                    }
                if request.primary_metric not in metrics:
                    raise RuntimeError(
                        f"{self.name} returned no {request.primary_metric!r} metric at x{scale:g}"
                    )
                log.info(
                    "%s %s x%g %s (model trained at %s): %s %.2f", request.dataset, request.protocol, scale,
                    tuple(size), original, request.primary_metric, metrics[request.primary_metric],
                )  # fmt: skip
                out[float(scale)] = metrics
        finally:
            backbone.set_img_size(original)
            model.train(was_training)
        return out

    # ------------------------------------------------------------------------------------------- helpers
    def backbone_of(self, model: nn.Module) -> nn.Module:
        """The backbone inside the task model (the attribute named by :attr:`backbone_prefix`)."""
        module: Any = model
        for part in self.backbone_prefix.rstrip(".").split("."):
            module = getattr(module, part)
        return module

    def result(
        self, request: EvalRequest, data: Any, metrics: dict[str, Any], fit_result: FitResult | None
    ) -> EvalResult:
        """The :class:`EvalResult`: metrics as floats, the registry's primary metric, the run's facts."""
        values = {key: float(value) for key, value in metrics.items()}
        if request.primary_metric not in values:
            raise RuntimeError(
                f"{self.name} returned no {request.primary_metric!r} metric (it has: {', '.join(values)})"
            )
        extra = dict(self.describe(request, data))
        if fit_result is not None:
            extra.update(
                selected_epoch=fit_result.selected_epoch,
                best_epoch=fit_result.best_epoch,
                resumed_from=fit_result.resumed_from,
                resumed_from_step=fit_result.resumed_from_step,
            )
        log.info(
            "%s %s: %s %.2f", request.dataset, request.protocol, request.primary_metric,
            values[request.primary_metric],
        )  # fmt: skip
        return EvalResult(metrics=values, primary_metric=request.primary_metric, extra=extra)
