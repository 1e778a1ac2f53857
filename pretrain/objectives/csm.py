"""Cross-scale matching (CSM): DINO-style distillation of the teacher's two global views into every view.

The teacher's prototype logits are centred (EMA of their batch mean, momentum 0.9) and sharpened with the
teacher temperature; each of the teacher's global views is the target of every student view except the
student's copy of that same view (there the attention relation is distilled instead, see
attention_relation.py). The centre is a registered buffer, so it travels with ``state_dict`` checkpoints.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["CSMLoss", "teacher_temp_at"]


def teacher_temp_at(
    step: int, *, warmup_steps: int, warmup_temp: float = 0.07, final_temp: float = 0.04
) -> float:
    """Teacher temperature at a global step: linear from ``warmup_temp`` to ``final_temp``, then constant."""
    if warmup_steps <= 0 or step >= warmup_steps:
        return float(final_temp)
    return float(warmup_temp + (final_temp - warmup_temp) * step / warmup_steps)


class CSMLoss(nn.Module):
    """Cross-entropy between the centred, sharpened teacher and the student over prototype logits.

    Args:
        out_dim: Number of prototypes (the projection head's ``out_dim``).
        student_temp: Student temperature.
        center_momentum: EMA momentum of the centre.
        teacher_views: Views the teacher encodes (the two globals).
    """

    center: torch.Tensor

    def __init__(
        self,
        out_dim: int,
        *,
        student_temp: float = 0.1,
        center_momentum: float = 0.9,
        teacher_views: int = 2,
    ) -> None:
        super().__init__()
        self.teacher_views = int(teacher_views)
        self.student_temp = float(student_temp)
        self.center_momentum = float(center_momentum)
        self.register_buffer("center", torch.zeros(1, out_dim))

    def forward(
        self,
        student_logits: torch.Tensor,
        teacher_logits: torch.Tensor,
        *,
        teacher_temp: float,
        update_center: bool = True,
    ) -> torch.Tensor:
        """Mean cross-entropy over all (teacher view, other student view) pairs.

        Args:
            student_logits: ``(Vs*B, K)``, view-major (rows ``v*B + b``); student views ``0..Vt-1`` are the
                views the teacher saw, in the same order.
            teacher_logits: ``(Vt*B, K)``, view-major; gets no gradient.
            teacher_temp: Teacher temperature (see :func:`teacher_temp_at`).
            update_center: Update the centre with this batch's teacher logits afterwards.

        Returns:
            The scalar loss.
        """
        teacher_logits = teacher_logits.detach()
        n_t, n_s = teacher_logits.shape[0], student_logits.shape[0]
        vt = self.teacher_views
        if n_t % vt or n_s % (n_t // vt):
            raise ValueError(f"{n_t} teacher / {n_s} student rows are not whole views ({vt} teacher views)")
        batch = n_t // vt
        vs = n_s // batch
        if vs <= vt:
            raise ValueError(f"{vs} student views leave no pair with the teacher's {vt} views")
        log_p_s = F.log_softmax(student_logits.float() / self.student_temp, dim=-1).view(vs, batch, -1)
        p_t = F.softmax((teacher_logits.float() - self.center) / teacher_temp, dim=-1).view(vt, batch, -1)
        # Sum over all student views once, then remove each teacher view's own student copy:
        # sum_{v != t} <p_t, log p_v> = <p_t, sum_v log p_v - log p_t(student)>.
        total_log_p = log_p_s.sum(dim=0)
        ce = -(p_t * (total_log_p.unsqueeze(0) - log_p_s[:vt])).sum(dim=-1)  # (vt, batch)
        loss = ce.mean(dim=1).sum() / (vt * vs - vt)
        if update_center:
            self.update_center(teacher_logits)
        return loss

    @torch.no_grad()
    def update_center(self, teacher_logits: torch.Tensor) -> None:
        """EMA update of the centre with the batch mean (all-reduced when a process group exists)."""
        rows = teacher_logits.detach().float()
        # Sum and row count travel in one tensor: one collective per step.
        stats = torch.cat([rows.sum(dim=0), rows.new_tensor([rows.shape[0]])])
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(stats)
        batch_center = (stats[:-1] / stats[-1]).unsqueeze(0)
        self.center.mul_(self.center_momentum).add_(batch_center * (1 - self.center_momentum))
