"""Attention-relation distillation: where student and teacher see the same global view, match the last
block's relation maps softmax(QK^T / sqrt d) and softmax(VV^T / sqrt d) instead of the prototypes."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["attention_relation_loss", "relation_kl"]

QKV = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def relation_kl(s_a: torch.Tensor, s_b: torch.Tensor, t_a: torch.Tensor, t_b: torch.Tensor) -> torch.Tensor:
    """KL(teacher || student) of the relation maps softmax(a b^T / sqrt d), mean over batch, heads, queries.

    All inputs are ``(B, heads, N, d)``; the teacher's get no gradient. Computed in log space (no epsilon):
    identical inputs give exactly zero.
    """
    scale = 1.0 / math.sqrt(s_a.shape[-1])
    # In fp32 even under autocast, which would run the products in bf16: the KL of two nearly equal maps is
    # far below bf16's resolution (it came out negative).
    with torch.autocast(s_a.device.type, enabled=False):
        log_s = F.log_softmax((s_a.float() @ s_b.float().transpose(-2, -1)) * scale, dim=-1)
        with torch.no_grad():
            log_t = F.log_softmax((t_a.float() @ t_b.float().transpose(-2, -1)) * scale, dim=-1)
        return F.kl_div(log_s, log_t, reduction="none", log_target=True).sum(dim=-1).mean()


def attention_relation_loss(student_qkv: QKV, teacher_qkv: QKV) -> torch.Tensor:
    """QK relation KL plus VV relation KL between student and teacher on the same view(s).

    Args:
        student_qkv: ``(q, k, v)`` of the student's last block, each ``(B, heads, N, head_dim)``.
        teacher_qkv: The teacher's, same shapes, same views in the same order.

    Returns:
        The scalar loss (the two global views batched together count as one mean, as the mean of the two).
    """
    sq, sk, sv = student_qkv
    tq, tk, tv = teacher_qkv
    if sq.shape != tq.shape or sv.shape != tv.shape:
        raise ValueError(f"student q/v {tuple(sq.shape)} and teacher q/v {tuple(tq.shape)} differ in shape")
    return relation_kl(sq, sk, tq, tk) + relation_kl(sv, sv, tv, tv)
