"""Meta-architecture: weight-0 terms neither allocated nor computed; the teacher holds what it runs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from saip_bench.pretrain.meta_arch import ArchSettings, MetaArch
from saip_bench.pretrain.methods import resolve
from saip_bench.pretrain.views import MultiCropViews, SaipViews, collate_views

TINY = {
    "img_size": (64, 32),
    "vit_kwargs": {"depth": 3, "embed_dim": 32, "num_heads": 2},
    "mid_block": 1,
    "out_dim": 64,
    "hidden_dim": 32,
    "bottleneck_dim": 16,
    "csr_decoder_dim": 32,
    "csr_decoder_depth": 1,
    "csr_decoder_heads": 2,
    "css_decoder_dim": 32,
    "css_decoder_heads": 2,
}


def make(method: str = "saip", objectives: str | None = None, **weights: float) -> MetaArch:
    torch.manual_seed(0)
    return MetaArch(resolve(method, objectives, weights), ArchSettings(**TINY))


@pytest.fixture(scope="module")
def batch() -> dict[str, torch.Tensor]:
    from saip_bench.pretrain.composite import CompositeMaker

    rng = np.random.default_rng(0)
    imgs = [Image.fromarray(rng.integers(0, 255, (96, 48, 3), dtype=np.uint8)) for _ in range(3)]
    views = SaipViews(
        MultiCropViews(global_size=(64, 32), local_size=(32, 16), local_crops_number=4),
        CompositeMaker(lambda r: imgs[int(r.integers(3))], size=(64, 64), person_size=(32, 16)),
    )
    return collate_views([views(im, np.random.default_rng(i)) for i, im in enumerate(imgs)])


def names(module) -> set[str]:
    return {n for n, _ in module.named_parameters()} if module is not None else set()


def test_saip_returns_every_term_and_the_weighted_total(batch):
    model = make(csm=0.5, csr=2.0)
    out = model(batch, 0)
    assert {"loss", "csm", "csm_attn", "csr", "css"} <= set(out)
    w = model.spec.weights
    expected = sum(w[t] * out[t] for t in ("csm", "csm_attn", "csr", "css"))
    assert torch.allclose(out["loss"], expected)
    assert torch.allclose(out["css"], out["css_inst"] + out["css_region"])
    out["loss"].backward()
    assert all(p.grad is None for p in model.teacher.parameters())
    assert model.student["csr_decoder"].parameters().__next__().grad is not None


def test_weight_zero_term_allocates_nothing():
    full = make()
    no_csr = make(csr=0.0)
    assert "csr_decoder" in full.student and "csr_decoder" not in no_csr.student
    assert not any("csr_decoder" in n for n in names(no_csr))
    no_css = make(css=0.0)
    assert "css_decoder" not in no_css.student and "inter_norm" not in no_css.teacher
    only_pixel = make(objectives="csr")
    assert only_pixel.teacher is None and "proj" not in only_pixel.student  # no teacher, no projection head
    assert sum(p.numel() for p in only_pixel.parameters()) < sum(p.numel() for p in full.parameters())


def test_weight_zero_term_is_not_computed(batch, monkeypatch):
    import saip_bench.pretrain.objectives.csr as csr_mod
    import saip_bench.pretrain.objectives.css as css_mod

    def boom(*args, **kwargs):
        raise AssertionError("a weight-0 term was computed")

    monkeypatch.setattr(csr_mod, "csr_loss", boom)
    monkeypatch.setattr(css_mod, "css_loss", boom)
    batch = {k: v for k, v in batch.items() if k not in ("composite", "masks")}  # not needed without CSS
    out = make(csr=0.0, css=0.0)(batch, 0)
    assert set(out) == {"loss", "csm", "csm_attn"}


def test_teacher_holds_and_runs_only_what_it_uses(batch):
    dino = make("dino")
    assert set(dino.teacher) == {"vit", "proj"}
    assert make("mae").teacher is None
    css_only = make(objectives="css")
    t_vit = css_only.teacher["vit"]
    assert len(t_vit.blocks) == TINY["mid_block"] + 1  # stops at the intermediate block
    assert "proj" not in css_only.teacher
    calls = []
    for block in t_vit.blocks:
        block.register_forward_hook(lambda *a: calls.append(1))
    css_only(batch, 0)
    assert len(calls) == TINY["mid_block"] + 1
    vit, branch = css_only.export_vit("teacher")
    assert branch == "student" and vit is css_only.student["vit"]  # a truncated teacher is no backbone


def test_ema_update_moves_teacher_towards_student():
    model = make()
    with torch.no_grad():
        for p in model.student.parameters():
            p.add_(1.0)
    model.update_teacher(0.0)  # momentum 0: copy
    student = dict(model.student.named_parameters())
    for name, p in model.teacher.named_parameters():
        assert torch.equal(p, student[name]), name
        assert not p.requires_grad


def test_random_draws_depend_on_step_not_on_global_rng(batch):
    model = make("mae")
    a = model(batch, 3)["loss"]
    torch.manual_seed(123)
    b = model(batch, 3)["loss"]
    c = model(batch, 4)["loss"]
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_dino_and_mae_terms(batch):
    assert set(make("dino")(batch, 0)) == {"loss", "dino"}
    out = make("mae")({"globals": batch["globals"]}, 0)
    assert set(out) == {"loss", "mae"} and torch.isfinite(out["loss"])


def test_rescale_settings_for_css(batch):
    from saip_bench.errors import ConfigError

    with pytest.raises(ConfigError, match="rescale_views"):
        MetaArch(resolve("saip", None, {}), ArchSettings(**{**TINY, "rescale_views": 1}))
    three = MetaArch(resolve("saip", None, {}), ArchSettings(**{**TINY, "rescale_views": 3}))
    seen = []
    three.student["css_decoder"].register_forward_pre_hook(lambda m, args: seen.append(args[0][1].shape))
    assert torch.isfinite(three(batch, 0)["css"])
    # The region query is local L-2 at its drawn scale: (B, 1 + patches, D) of a rescaled 32x16 view.
    assert seen and seen[0][0] == 3 and seen[0][-1] == TINY["vit_kwargs"]["embed_dim"]
