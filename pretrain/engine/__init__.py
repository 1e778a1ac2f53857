"""The pretraining engine: optimiser and schedules, the training loop, checkpoints, distributed set-up.

Library entry (what ``saip pretrain`` and ``saip demo`` call)::

    from saip_bench.pretrain.engine.run import build_config, run_pretraining

    cfg = build_config("smoke_cpu", method="dino", steps=5, overrides=["train.tensorboard=false"])
    result = run_pretraining(cfg, "data/LUP", "runs/dino")  # result.export_path, .first_losses, .last_losses
"""
