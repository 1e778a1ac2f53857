"""Export a pretrained backbone in the foundation's format (``backbone.safetensors`` + ``backbone.json``).

The teacher (the EMA weights, what SAIP/DINO evaluate) is exported by default; ``which="student"`` exports
the student. A method without a full teacher (MAE, or a CSS-only ablation whose teacher stops at the
intermediate block) exports its student and says so in the metadata.
"""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig

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
    from saip_bench.checkpoints import save_backbone
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
