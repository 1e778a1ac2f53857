"""Export a pretrained backbone in the foundation's format (``backbone.safetensors`` + ``backbone.json``).

The teacher (the EMA weights, what SAIP/DINO evaluate) is exported by default; ``which="student"`` exports
the student. A method without a full teacher (MAE, or a CSS-only ablation whose teacher stops at the
intermediate block) exports its student and says so in the metadata.
"""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig

from saip_bench.errors import CheckpointError

log = logging.getLogger(__name__)

EXPORT_NAME = "backbone.safetensors"


def export_backbone(
    model,
    path: str | Path,
    *,
    which: str = "teacher",
    method: str,
    step: int,
    config: DictConfig,
    source: str,
) -> Path:
    """Write the chosen branch's ViT of a :class:`~saip_bench.pretrain.meta_arch.MetaArch` to ``path``.

    Returns:
        The weights path (its JSON metadata lies beside it).
    """
    from saip_bench.backbones import save_backbone
    from saip_bench.pretrain.config import config_digest, to_dict

    vit, branch = model.export_vit(which)
    if branch != which:
        # MAE, and ablations without distillation, train no full EMA teacher: the student is the backbone.
        log.info("%s trains no full EMA teacher: exporting the student", method)
    m = config.model
    vit_kwargs = {k: m[k] for k in ("embed_dim", "depth", "num_heads") if m[k] is not None}
    return save_backbone(
        path,
        vit,
        arch=str(m.arch),
        img_size=tuple(int(s) for s in m.img_size),
        method=method,
        step=int(step),
        source=source,
        config_digest=config_digest(config),
        extra={
            "branch": branch,
            "objectives": list(model.spec.terms),
            "loss_weights": dict(model.spec.weights),
            "arch_overrides": vit_kwargs,  # non-empty only for shrunken test models
            "pretrain_config": to_dict(config),
        },
    )


def export_from_run(run_dir: str | Path, out: str | Path | None = None, *, which: str = "teacher") -> Path:
    """Re-export from a run directory's full checkpoint (e.g. the student after a teacher export)."""
    from omegaconf import OmegaConf

    from saip_bench.pretrain import methods
    from saip_bench.pretrain.engine.checkpoint import checkpoint_path, load_checkpoint
    from saip_bench.pretrain.meta_arch import MetaArch

    run_dir = Path(run_dir)
    state = load_checkpoint(checkpoint_path(run_dir))
    if "config" not in state:
        raise CheckpointError(f"{checkpoint_path(run_dir)}: carries no config to rebuild the model from")
    cfg = OmegaConf.create(state["config"])
    spec = methods.resolve(cfg.method, cfg.objectives, dict(cfg.loss))
    model = MetaArch.from_config(cfg, spec)
    model.load_state_dict(state["model"], strict=True)
    out = Path(out) if out is not None else run_dir / EXPORT_NAME
    return export_backbone(
        model, out, which=which, method=spec.name, step=int(state["step"]), config=cfg, source=str(run_dir)
    )
