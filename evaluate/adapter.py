"""The contract between the evaluation dispatch and a task (re-ID, attributes, ...).

Dispatch (:mod:`saip_bench.evaluate.dispatch`) resolves everything that is the same for every task: the
dataset folder, the recipe (already merged for the protocol and budget), the input size for the requested
scale, the run folder and the device; it loads a *fresh* backbone for each evaluation and hands both to the
task's adapter. The adapter builds its data, head and losses, trains through
:func:`saip_bench.engine.fit` when the protocol needs training, computes its metrics (metrics live
with their task) and returns an :class:`EvalResult`. Dispatch times the call and records the result.

An adapter is any object with the attributes and method of :class:`TaskAdapter`; the protocol registry
(:mod:`saip_bench.evaluate.protocols`) names it as ``"module.path:ClassName"`` and instantiates it with no
arguments, so importing a task costs nothing until it is evaluated.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from saip_bench.engine.loop import ProgressFn

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from saip_bench.backbones import Backbone


#: The evaluation protocols: ``finetune`` trains backbone + head, ``linear`` trains a head on frozen
#: features, ``frozen`` trains nothing (e.g. re-ID retrieval on frozen backbone features).
PROTOCOL_NAMES: tuple[str, ...] = ("finetune", "linear", "frozen")


@dataclass(frozen=True)
class EvalRequest:
    """One evaluation: one dataset, one protocol, one budget, one input scale.

    Attributes:
        task: task name, e.g. ``"reid"`` or ``"attribute"``.
        dataset: dataset registry name, e.g. ``"market1501"``.
        data_dir: the dataset's own folder (e.g. ``.../Market-1501-v15.09.15``), already located.
        protocol: one of :data:`PROTOCOL_NAMES`.
        budget: ``"full"``, ``"short"`` or ``"smoke"``; already applied to ``recipe``.
        recipe: the resolved recipe for this protocol and budget: a plain dict (see
            :func:`saip_bench.evaluate.protocols.load_recipe`); its ``train`` section, if any, is the
            keyword set of :class:`saip_bench.engine.EngineConfig`.
        img_size: ``(H, W)`` input size for this evaluation (recipe size x scale, rounded to the patch size).
        scale: the multiple of the recipe's input size this evaluation runs at (1.0 normally).
        probe_scales: the scale probe (``saip evaluate --scales``): ``(scale, (H, W))`` pairs at which the
            model, once trained (or built, for ``frozen``) at ``img_size``, is evaluated again; the
            metrics come back in :attr:`EvalResult.by_scale`. Empty: only ``img_size`` is evaluated.
        run_dir: a folder owned by this evaluation for checkpoints and logs (exists, may hold a previous
            attempt's checkpoints when ``resume`` is set).
        device: torch device string, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        seed: the seed every random choice of the run derives from.
        resume: continue from ``run_dir``'s last checkpoint if there is one.
        progress: optional progress callback; adapters pass it on to the engine.
        primary_metric: the metric the report ranks by and ``select: best`` selects on (the registry's).
        best: ``"max"`` (higher is better) or ``"min"``, for the primary metric.
    """

    task: str
    dataset: str
    data_dir: Path
    protocol: str
    budget: str
    recipe: dict[str, Any]
    img_size: tuple[int, int]
    run_dir: Path
    scale: float = 1.0
    probe_scales: tuple[tuple[float, tuple[int, int]], ...] = ()
    device: str = "cpu"
    seed: int = 0
    resume: bool = False
    progress: ProgressFn | None = field(default=None, compare=False, repr=False)
    primary_metric: str = ""
    best: str = "max"

    @functools.cached_property
    def config(self) -> DictConfig:
        """``recipe`` as a read-only OmegaConf view: ``request.config.eval.batch_size``; reading a key the
        task's defaults file does not declare raises, so a typo in a task is found at once."""
        from omegaconf import OmegaConf

        view = OmegaConf.create(self.recipe)
        OmegaConf.set_struct(view, True)
        OmegaConf.set_readonly(view, True)
        return view


@dataclass
class EvalResult:
    """What an adapter returns: metrics of the selected model and which one is primary.

    Attributes:
        metrics: metric name -> value, e.g. ``{"mAP": 81.2, "R1": 92.0, "R5": ..., "R10": ...}``; values in
            percent where the field reports percent.
        primary_metric: the key of ``metrics`` the report ranks by (the protocol registry's primary metric).
        extra: free-form facts worth logging (best epoch, number of images, checkpoint path); not recorded
            in the results store.
        by_scale: the scale probe's metrics: probe scale -> metrics of the same model at that scale's size
            (one entry per :attr:`EvalRequest.probe_scales`; empty without a probe).
    """

    metrics: dict[str, float]
    primary_metric: str
    extra: dict[str, Any] = field(default_factory=dict)
    by_scale: dict[float, dict[str, float]] = field(default_factory=dict)

    @property
    def primary_value(self) -> float:
        return float(self.metrics[self.primary_metric])


@runtime_checkable
class TaskAdapter(Protocol):
    """A task's entry point for evaluation.

    Attributes:
        task: the task name it serves (``"reid"``).
        protocols: the protocols it implements, a subset of :data:`PROTOCOL_NAMES`.
    """

    task: str
    protocols: tuple[str, ...]

    def run(self, request: EvalRequest, backbone: Backbone) -> EvalResult:
        """Evaluate ``backbone`` as ``request`` says and return the metrics.

        Args:
            request: what to evaluate, where the data is, where to write, the resolved recipe.
            backbone: a freshly loaded backbone at ``request.img_size`` on ``request.device``; the adapter may
                train it in place (``finetune``) or freeze it (``linear``/``frozen``).

        Raises:
            saip_bench.errors.DataFormatError: the dataset folder does not match its format.
            saip_bench.errors.ConfigError: the recipe is missing or has an unknown key.
        """
        ...


def check_request(adapter: TaskAdapter, request: EvalRequest, *, needs_train: bool = False) -> None:
    """Refuse a request the adapter cannot run, before any data is read or model built.

    Args:
        adapter: the task's adapter (its ``task`` and ``protocols`` name what it implements).
        request: the evaluation asked for.
        needs_train: the protocol trains through :func:`saip_bench.engine.fit`, so the recipe must
            have a ``train`` section.

    Raises:
        saip_bench.errors.ConfigError: an unsupported protocol, or a missing ``train`` section.
    """
    from saip_bench.errors import ConfigError

    if request.protocol not in adapter.protocols:
        raise ConfigError(
            f"the {adapter.task} task supports protocols {', '.join(adapter.protocols)}, "
            f"not {request.protocol!r}"
        )
    if needs_train and not request.recipe.get("train"):
        raise ConfigError(f"the {request.protocol} protocol needs a 'train' section in its recipe")
