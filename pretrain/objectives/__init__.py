"""SAIP objectives, one file each: tensors in, a scalar out (see ``saip_bench.pretrain`` for the contract)."""

from saip_bench.pretrain.objectives.attention_relation import attention_relation_loss, relation_kl
from saip_bench.pretrain.objectives.csm import CSMLoss, teacher_temp_at
from saip_bench.pretrain.objectives.csr import (
    carry_mask,
    csr_loss,
    draw_base_mask,
    keep_from_mask,
    masked_mse,
    patch_targets,
    patchify,
    unpatchify,
)
from saip_bench.pretrain.objectives.css import css_loss, resize_mask

__all__ = [
    "CSMLoss",
    "attention_relation_loss",
    "carry_mask",
    "csr_loss",
    "css_loss",
    "draw_base_mask",
    "keep_from_mask",
    "masked_mse",
    "patch_targets",
    "patchify",
    "relation_kl",
    "resize_mask",
    "teacher_temp_at",
    "unpatchify",
]
