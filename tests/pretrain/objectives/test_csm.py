"""CSM loss against a direct cross-entropy written out here, centre update math, temperature schedule."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from saip_bench.pretrain.objectives import CSMLoss, teacher_temp_at


def _direct(student, teacher, center, batch, s_temp, t_temp):
    vs, vt = student.shape[0] // batch, teacher.shape[0] // batch
    total, terms = 0.0, 0
    for t in range(vt):
        q = F.softmax((teacher[t * batch : (t + 1) * batch] - center) / t_temp, dim=-1)
        for v in range(vs):
            if v == t:
                continue
            log_p = F.log_softmax(student[v * batch : (v + 1) * batch] / s_temp, dim=-1)
            total = total + torch.sum(-q * log_p, dim=-1).mean()
            terms += 1
    return total / terms


def test_equals_direct_cross_entropy():
    torch.manual_seed(0)
    batch, k = 3, 11
    student = torch.randn(6 * batch, k, requires_grad=True)
    teacher = torch.randn(2 * batch, k)
    loss_fn = CSMLoss(k)
    loss_fn.center.copy_(torch.randn(1, k) * 0.1)
    center = loss_fn.center.clone()
    loss = loss_fn(student, teacher, teacher_temp=0.04)
    expected = _direct(student, teacher, center, batch, 0.1, 0.04)
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert student.grad is not None and student.grad.abs().sum() > 0


def test_teacher_gets_no_gradient_and_same_view_is_skipped():
    torch.manual_seed(1)
    batch, k = 2, 5
    teacher = torch.randn(2 * batch, k, requires_grad=True)
    student = torch.randn(4 * batch, k)
    base = CSMLoss(k)(student, teacher, teacher_temp=0.05, update_center=False)
    assert not base.requires_grad
    # Changing the student's copy of teacher view 0 only changes the pairs with teacher view 1.
    student2 = student.clone()
    student2[:batch] += torch.randn(batch, k)
    changed = CSMLoss(k)(student2, teacher, teacher_temp=0.05, update_center=False)
    assert not torch.isclose(base, changed)


def test_center_update_math():
    loss_fn = CSMLoss(4, center_momentum=0.9)
    loss_fn.center.fill_(1.0)
    teacher = torch.tensor([[0.0, 2.0, 4.0, 6.0], [2.0, 2.0, 0.0, 2.0]])
    loss_fn.update_center(teacher)
    torch.testing.assert_close(loss_fn.center, 0.9 * torch.ones(1, 4) + 0.1 * teacher.mean(0, keepdim=True))
    assert "center" in loss_fn.state_dict()


def test_forward_updates_center_once_unless_told_not_to():
    loss_fn = CSMLoss(3)
    teacher = torch.ones(4, 3)
    loss_fn(torch.zeros(8, 3), teacher, teacher_temp=0.04, update_center=False)
    assert loss_fn.center.abs().sum() == 0
    loss_fn(torch.zeros(8, 3), teacher, teacher_temp=0.04)
    torch.testing.assert_close(loss_fn.center, torch.full((1, 3), 0.1))


def test_rejects_rows_that_are_not_whole_views():
    with pytest.raises(ValueError):
        CSMLoss(3)(torch.zeros(7, 3), torch.zeros(4, 3), teacher_temp=0.04)
    with pytest.raises(ValueError):
        CSMLoss(3)(torch.zeros(4, 3), torch.zeros(4, 3), teacher_temp=0.04)


def test_teacher_temperature_schedule():
    assert teacher_temp_at(0, warmup_steps=10) == pytest.approx(0.07)
    assert teacher_temp_at(5, warmup_steps=10) == pytest.approx(0.055)
    assert teacher_temp_at(10, warmup_steps=10) == pytest.approx(0.04)
    assert teacher_temp_at(0, warmup_steps=0) == pytest.approx(0.04)


_RANK_SCRIPT = """
import importlib.util, sys, torch, torch.distributed as dist
# Load csm.py alone (it needs only torch): importing the whole package would cost seconds per rank.
spec = importlib.util.spec_from_file_location("csm", sys.argv[3])
csm = importlib.util.module_from_spec(spec)
spec.loader.exec_module(csm)
CSMLoss = csm.CSMLoss
rank, init = int(sys.argv[1]), sys.argv[2]
dist.init_process_group("gloo", init_method=init, rank=rank, world_size=2)
loss_fn = CSMLoss(3, center_momentum=0.5)
rows = 1 + rank  # ranks hold different batch sizes: the centre is the mean over all rows
teacher = torch.full((2 * rows, 3), float(rank + 1))
loss_fn(torch.zeros(4 * rows, 3), teacher, teacher_temp=0.04)
print(",".join(f"{v:.6f}" for v in loss_fn.center.flatten().tolist()))
dist.destroy_process_group()
"""


def test_center_is_averaged_across_ranks(tmp_path):
    import subprocess
    import sys

    from saip_bench.pretrain.objectives import csm

    script = tmp_path / "rank.py"
    script.write_text(_RANK_SCRIPT)
    init = f"file://{tmp_path / 'store'}"
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(r), init, csm.__file__], stdout=subprocess.PIPE, text=True
        )
        for r in range(2)
    ]
    outs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    # Rank 0: 2 rows of 1.0, rank 1: 4 rows of 2.0 -> global mean 10/6; momentum 0.5 from a zero centre.
    expected = 0.5 * 10 / 6
    for out in outs:
        assert [float(v) for v in out.split(",")] == pytest.approx([expected] * 3, abs=1e-5)
