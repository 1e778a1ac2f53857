"""The pretraining engine: the run entry, the pretraining loop (accumulation, EMA teacher), CPU memory aids.

Parameter groups, the lr schedule, mixed precision, rank helpers, checkpoints and the step log are the shared
training engine's (:mod:`saip_bench.engine`), which fine-tuning uses too.

Library entry (what ``saip pretrain`` and ``saip demo`` call)::

    from saip_bench.pretrain.engine.run import build_config, run_pretraining

    cfg = build_config("smoke_cpu", method="dino", steps=5, overrides=["train.tensorboard=false"])
    result = run_pretraining(cfg, "data/LUP", "runs/dino")  # result.export_path, .first_losses, .last_losses
"""
