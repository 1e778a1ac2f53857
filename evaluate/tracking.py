"""An evaluation as one experiment-tracker run: its recipe as parameters, its training and its final metrics.

With ``train.tracker=mlflow`` or ``wandb`` (see :mod:`saip_bench.engine.trackers`), :func:`run_tracked`
opens a tracker run for the evaluation's run directory around the adapter: the fine-tuning loop's step log
feeds it (losses, lr, images/s, each evaluation), and the final metrics, those the record holds, go to it as
``final/<metric>``, for probes that train nothing (``frozen``, ``linear``) too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from saip_bench.engine.trackers import tracking

if TYPE_CHECKING:
    from saip_bench.backbones import Backbone
    from saip_bench.evaluate.adapter import EvalRequest, EvalResult, TaskAdapter


def run_tracked(
    adapter: TaskAdapter, request: EvalRequest, backbone: Backbone, *, enabled: bool | None = None
) -> EvalResult:
    """``adapter.run(request, backbone)``, tracked when the recipe's ``train.tracker`` is on.

    Args:
        adapter: the task's adapter.
        request: the evaluation; its ``recipe["train"]`` holds the tracker keys (a protocol without training
            gets that section from a ``train.tracker=...`` override alone).
        backbone: the loaded backbone (its name and digest become parameters).
        enabled: whether this process logs (rank 0); default the engine's rank check.

    Raises:
        ConfigError: the tracker's package is missing or it cannot start (before anything runs).
    """
    train = request.recipe.get("train") or {}
    kind = train.get("tracker") or "none"
    if kind == "none":
        return adapter.run(request, backbone)
    params: dict[str, Any] = {
        **request.recipe,
        "task": request.task,
        "dataset": request.dataset,
        "scale": request.scale,
        "img_size": list(request.img_size),
        "backbone": {
            "name": backbone.name,
            "digest": backbone.digest,
            "method": str(backbone.meta.get("method", "unknown")),
        },
    }
    with tracking(
        kind, request.run_dir, params=params, project=train.get("tracker_project"),
        directory=train.get("tracker_dir"), job_type="evaluate", resume=request.resume, enabled=enabled,
    ) as tracker:  # fmt: skip
        result = adapter.run(request, backbone)
        if tracker is not None:
            tracker.log_metrics({f"final/{name}": value for name, value in result.metrics.items()})
    return result
