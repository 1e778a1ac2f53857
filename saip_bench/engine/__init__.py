"""The one training engine: used by pretraining and by every evaluation task.

Parameter groups, schedules, mixed precision, clipping, non-finite handling, rank helpers, checkpoints and
the fine-tuning loop :func:`fit` live here, below both :mod:`saip_bench.pretrain` and
:mod:`saip_bench.evaluate`; neither side keeps a training stack of its own.

Modules: ``params`` (parameter groups, the one no-weight-decay rule, layer decay from timm's
``group_matcher``), ``schedule`` (the one lr schedule), ``precision`` (autocast, grad scaler), ``distributed``
(rank helpers, collectives, DDP), ``checkpoint`` (atomic weights-only checkpoints, RNG state), ``finite``
(the non-finite-loss check), ``logging`` (step lines, ``train.log``, TensorBoard), ``trackers`` (MLflow and
W&B, optional extras, fed by ``logging``), ``batch`` (``move_to``), ``loop`` (:func:`fit`).
"""

from saip_bench.engine.batch import move_to
from saip_bench.engine.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from saip_bench.engine.distributed import (
    DistInfo,
    all_gather_object,
    all_gather_tensor,
    all_reduce_mean,
    all_reduce_sum,
    barrier,
    init_distributed,
    is_dist,
    is_main,
    wrap_ddp,
)
from saip_bench.engine.finite import NonFiniteLossError, check_finite
from saip_bench.engine.hooks import Hook, Run
from saip_bench.engine.logging import TrainLogger
from saip_bench.engine.loop import (
    EngineConfig,
    FitResult,
    ProgressFn,
    fit,
    loader_workers,
    make_optimizer,
    make_train_loader,
)
from saip_bench.engine.params import (
    build_optimizer,
    build_param_groups,
    no_weight_decay,
    weight_decay_groups,
)
from saip_bench.engine.precision import amp_precision, autocast_context, grad_scaler, resolve_precision
from saip_bench.engine.schedule import cosine_ramp, lr_at, lr_factor

__all__ = [
    "DistInfo",
    "EngineConfig",
    "FitResult",
    "NonFiniteLossError",
    "ProgressFn",
    "Hook",
    "Run",
    "TrainLogger",
    "all_gather_object",
    "all_gather_tensor",
    "all_reduce_mean",
    "all_reduce_sum",
    "amp_precision",
    "autocast_context",
    "barrier",
    "build_optimizer",
    "build_param_groups",
    "check_finite",
    "cosine_ramp",
    "fit",
    "grad_scaler",
    "init_distributed",
    "is_dist",
    "is_main",
    "load_checkpoint",
    "loader_workers",
    "lr_at",
    "lr_factor",
    "make_optimizer",
    "make_train_loader",
    "move_to",
    "no_weight_decay",
    "resolve_precision",
    "rng_state",
    "save_checkpoint",
    "set_rng_state",
    "weight_decay_groups",
    "wrap_ddp",
]
