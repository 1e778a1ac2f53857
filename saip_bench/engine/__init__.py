"""The one training engine: used by pretraining and by every evaluation task.

Parameter groups, schedules, mixed precision, clipping, non-finite handling, rank helpers, checkpoints and
the fine-tuning loop :func:`fit` live here, below both :mod:`saip_bench.pretrain` and
:mod:`saip_bench.evaluate`; neither side keeps a training stack of its own.
"""

from saip_bench.engine.loop import (
    EngineConfig,
    FitResult,
    ProgressFn,
    build_param_groups,
    fit,
    loader_workers,
    lr_factor,
    make_optimizer,
    make_train_loader,
    move_to,
)

__all__ = [
    "EngineConfig",
    "FitResult",
    "ProgressFn",
    "build_param_groups",
    "fit",
    "loader_workers",
    "lr_factor",
    "make_optimizer",
    "make_train_loader",
    "move_to",
]
