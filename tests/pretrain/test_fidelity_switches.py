"""The public-code switches: EMA per micro-batch, no clipping, the public weight-decay rule, aspect-keeping
rescale; and the paper recipe that sets them, every value marked against the public code."""

from __future__ import annotations

import copy
import re

import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from torch import nn

from saip_bench.engine import DistInfo, cosine_ramp
from saip_bench.engine.params import check_hyperparameters, weight_decay_groups
from saip_bench.errors import ConfigError
from saip_bench.pretrain import config as C
from saip_bench.pretrain.engine.optim import ema_update
from saip_bench.pretrain.engine.trainer import Trainer, TrainSettings
from saip_bench.pretrain.meta_arch import ArchSettings, MetaArch
from saip_bench.pretrain.methods import resolve
from saip_bench.pretrain.views import rescale, rescaled_size
from tests.pretrain.test_meta_arch import TINY as TINY_ARCH


class Recorder(nn.Module):
    """A regression with an EMA teacher that records every teacher update and what each forward saw."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.student = nn.ModuleDict({"lin": nn.Linear(4, 1)})
        self.teacher = copy.deepcopy(self.student).requires_grad_(False)
        with torch.no_grad():
            self.teacher["lin"].weight.add_(1.0)  # apart from the student, so every update moves it
        self.updates: list[tuple[float, torch.Tensor]] = []  # (momentum, student weight at the update)
        self.teacher_seen: list[torch.Tensor] = []  # the teacher's weight at each forward

    def forward(self, batch, step):
        self.teacher_seen.append(self.teacher["lin"].weight.detach().clone())
        x, y = batch
        loss = ((self.student["lin"](x) - y) ** 2).mean()
        return {"loss": loss}

    def update_teacher(self, momentum):
        self.updates.append((momentum, self.student["lin"].weight.detach().clone()))
        ema_update(self.teacher, self.student, momentum)


def batches(start: int):
    i = start
    while True:
        x = torch.randn(4, 4, generator=torch.Generator().manual_seed(100 + i))
        yield x, x.sum(dim=1, keepdim=True)
        i += 1


def settings(**kw) -> TrainSettings:
    base = {"total_steps": 3, "base_lr": 5e-2, "clip_grad": None, "tensorboard": False, "ema_start": 0.9}
    return TrainSettings(**{**base, **kw})


# ----------------------------------------------------------------------------------------------- EMA
def test_micro_batch_ema_moves_the_teacher_after_every_micro_batch(tmp_path):
    model = Recorder()
    teacher0 = model.teacher["lin"].weight.detach().clone()
    student0 = model.student["lin"].weight.detach().clone()
    s = settings(accum_steps=4, ema_every="micro_batch")
    Trainer(model, s, run_dir=tmp_path, info=DistInfo()).fit(batches)

    assert len(model.updates) == 3 * 4  # 4 updates per optimiser step
    momenta = [m for m, _ in model.updates]
    assert momenta == [cosine_ramp(i, 12, 0.9, 1.0) for i in range(12)]  # the cosine over micro-batches
    # The public order: micro-batches 0-2 pull towards the student before the step, 3 towards the one after.
    assert all(torch.equal(w, student0) for _, w in model.updates[:3])
    assert not torch.equal(model.updates[3][1], student0)
    # ... and the next micro-batch's teacher forward sees the moved teacher.
    assert torch.equal(model.teacher_seen[0], teacher0)
    assert not torch.equal(model.teacher_seen[1], teacher0)

    expected = teacher0
    for m, w in model.updates:  # the EMA by hand
        expected = m * expected + (1 - m) * w
    assert torch.allclose(model.teacher["lin"].weight, expected, atol=1e-7)


def test_optimizer_step_ema_moves_the_teacher_once_a_step(tmp_path):
    model = Recorder()
    Trainer(model, settings(accum_steps=4), run_dir=tmp_path, info=DistInfo()).fit(batches)
    assert [m for m, _ in model.updates] == [cosine_ramp(i, 3, 0.9, 1.0) for i in range(3)]


def test_without_accumulation_both_ema_modes_are_the_same(tmp_path):
    runs = []
    for mode in ("optimizer_step", "micro_batch"):
        model = Recorder()
        Trainer(model, settings(ema_every=mode), run_dir=tmp_path / mode, info=DistInfo()).fit(batches)
        runs.append(model.state_dict())
    for a, b in zip(runs[0].values(), runs[1].values(), strict=True):
        assert torch.equal(a, b)


def test_micro_batch_ema_resumes_bit_exactly(tmp_path):
    s = {"total_steps": 6, "accum_steps": 2, "ema_every": "micro_batch"}
    full = Recorder()
    Trainer(full, settings(**s), run_dir=tmp_path / "full", info=DistInfo()).fit(batches)

    def dies_after_three_steps(start):
        it = batches(start)
        for _ in range(3 * 2):
            yield next(it)

    part = tmp_path / "part"
    first = Trainer(Recorder(), settings(**s, checkpoint_every=3), run_dir=part, info=DistInfo())
    with pytest.raises(StopIteration):
        first.fit(dies_after_three_steps)
    resumed = Recorder()
    Trainer(resumed, settings(**s), run_dir=part, info=DistInfo()).fit(
        batches, resume_from=part / "checkpoint.pt"
    )
    for a, b in zip(full.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_an_unknown_ema_mode_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="train.ema_every='sometimes'"):
        Trainer(Recorder(), settings(ema_every="sometimes"), run_dir=tmp_path, info=DistInfo())


# ------------------------------------------------------------------------------------------ clipping
def test_clip_grad_null_is_accepted_and_a_negative_one_is_not():
    assert C.load_config("smoke_cpu", ["train.clip_grad=null"]).train.clip_grad is None
    assert C.load_config("saip_lup1m_8gpu").train.clip_grad is None
    with pytest.raises(ConfigError, match="train.clip_grad=-1"):
        C.load_config("smoke_cpu", ["train.clip_grad=-1"])
    check_hyperparameters({"train": {"clip_grad": None}}, source="test")


# --------------------------------------------------------------------------------------- weight decay
TINY = {**TINY_ARCH, "vit_kwargs": {"depth": 2, "embed_dim": 32, "num_heads": 2}, "mid_block": 0}


def exempt_names(model: MetaArch, rule: str) -> set[str]:
    trainer_settings = settings(wd_exempt=rule)
    optimizer = Trainer(model, trainer_settings, run_dir=".", info=DistInfo()).optimizer
    decayed, exempt = optimizer.param_groups
    assert decayed["weight_decay"] == trainer_settings.weight_decay and exempt["weight_decay"] == 0.0
    ids = {id(p) for p in exempt["params"]}
    return {n for n, p in model.student.named_parameters() if id(p) in ids}


def test_the_two_exemption_rules_on_a_tiny_saip_model():
    torch.manual_seed(0)
    model = MetaArch(resolve("saip", None, {}), ArchSettings(**TINY))
    trainable = {n: p for n, p in model.student.named_parameters() if p.requires_grad}
    one_d = {n for n, p in trainable.items() if p.ndim == 1}
    assert {n for n in trainable if n.endswith(".bias")} <= one_d  # every bias is 1-D here

    public = exempt_names(model, "public")
    tokens = exempt_names(model, "tokens")
    assert public == one_d  # biases and norm weights, nothing else
    assert tokens - public == {"vit.cls_token", "vit.pos_embed", "csr_decoder.mask_token"}
    assert public <= tokens
    for name in ("csr_decoder.cls_type", "csr_decoder.cond_type", "vit.blocks.0.attn.qkv.weight"):
        assert name not in tokens and name not in public  # decayed by both
    for name in ("vit.blocks.0.attn.qkv.bias", "vit.norm.weight", "inter_norm.weight"):
        assert name in public and name in tokens


def test_the_public_rule_exempts_biases_by_name_and_decays_0d():
    module = nn.Module()
    module.bias = nn.Parameter(torch.zeros(2, 2))  # a 2-D tensor named bias: only its name exempts it
    module.scale = nn.Parameter(torch.zeros(()))  # 0-D: timm 0.3.2 decays it
    module.inner = nn.Linear(2, 2)
    decay, no_decay = weight_decay_groups([module], 0.05, exempt="public")
    names = {id(p): n for n, p in module.named_parameters()}
    assert {names[id(p)] for p in no_decay["params"]} == {"inner.bias"}  # "bias" has no ".": decayed
    assert {names[id(p)] for p in decay["params"]} == {"bias", "scale", "inner.weight"}
    with pytest.raises(ConfigError, match="tokens, public"):
        weight_decay_groups([module], 0.05, exempt="none")


# ------------------------------------------------------------------------------------------- rescale
#: The public code at 128x64: F.interpolate(scale_factor=f) sizes, and the whole patches its patch
#: embedding reads from them.
PUBLIC = {0.75: ((96, 48), (96, 48)), 0.875: ((112, 56), (112, 48)), 1.125: ((144, 72), (144, 64)),
          1.25: ((160, 80), (160, 80))}  # fmt: skip


@pytest.mark.parametrize("factor", sorted(PUBLIC))
def test_keep_aspect_reproduces_the_public_sizes(factor):
    x = torch.randn(2, 3, 128, 64)
    resized, read = PUBLIC[factor]
    assert tuple(F.interpolate(x, scale_factor=factor).shape[-2:]) == resized  # the public call itself
    assert rescaled_size((128, 64), factor, 16, keep_aspect=True) == read
    out = rescale(x, factor, 16, keep_aspect=True)
    assert out.shape == (2, 3, *read)
    # Both sides scaled by the factor (resized to the public size), then the partial patch dropped.
    full = F.interpolate(x, size=resized, mode="bilinear", align_corners=False, antialias=factor < 1)
    assert torch.equal(out, full[..., : read[0], : read[1]])


def test_keep_aspect_sizes_are_patch_multiples_within_the_scaled_view():
    for h, w in ((128, 64), (256, 128), (96, 48), (32, 16), (16, 16)):
        for factor in (0.5, 0.75, 0.875, 1.0, 1.125, 1.25, 1.5):
            rh, rw = rescaled_size((h, w), factor, 16, keep_aspect=True)
            assert rh % 16 == 0 and rw % 16 == 0 and rh >= 16 and rw >= 16
            assert rh <= max(16, int(h * factor)) and rw <= max(16, int(w * factor))
    assert rescaled_size((32, 16), 0.75, 16, keep_aspect=True) == (16, 16)  # at least one patch a side
    x = torch.randn(1, 3, 128, 64)
    assert rescale(x, 1.0, keep_aspect=True) is x


def test_meta_arch_rescales_the_local_views_as_configured():
    locals_ = torch.randn(3 * 2, 3, 128, 64)  # 3 local views of 2 samples: 1 plain, 2 rescaled
    batch = {"globals": torch.randn(2 * 2, 3, 64, 32), "locals": locals_}
    for keep, expected in ((True, (112, 48)), (False, (112, 64))):
        torch.manual_seed(0)
        arch = ArchSettings(**TINY, rescale_factors=(0.875,), rescale_keep_aspect=keep)
        model = MetaArch(resolve("saip", "csm", {}), arch)
        seen: list[torch.Size] = []
        hook = model.student["vit"].patch_embed.proj.register_forward_pre_hook(
            lambda m, a, seen=seen: seen.append(a[0].shape)
        )
        model(batch, 0)
        hook.remove()
        assert (4, 3, *expected) in seen, seen  # both rescaled views in one call

    cfg = C.load_config("smoke_cpu", ["views.rescale_keep_aspect=true"])
    assert MetaArch.from_config(cfg, resolve("saip", None, {})).s.rescale_keep_aspect


# -------------------------------------------------------------------------------------- the recipes
def test_the_paper_recipe_takes_the_public_switches():
    cfg = C.load_config("saip_lup1m_8gpu")
    t = cfg.train
    assert (t.ema_every, t.clip_grad, t.wd_exempt, cfg.views.rescale_keep_aspect) == (
        "micro_batch", None, "public", True
    )  # fmt: skip
    defaults = C.load_config(None)
    assert (defaults.train.ema_every, defaults.train.clip_grad, defaults.train.wd_exempt) == (
        "optimizer_step", 3.0, "tokens"
    )  # fmt: skip
    assert not defaults.views.rescale_keep_aspect


#: What the paper recipe must state itself rather than inherit (a default changing cannot move it).
STATED = {
    "model": {"arch", "img_size", "mid_block", "drop_path_rate"},
    "views": {
        "global_size", "local_size", "local_crops", "global_scale", "local_scale", "ratio", "color_jitter_p",
        "grayscale_p", "local_blur_p", "solarize_p", "rescale_views", "rescale_factors",
        "rescale_keep_aspect", "composite_size", "person_alpha", "background_dir",
    },
    "heads": set(C.to_dict(C.load_config(None))["heads"]),
    "loss": {"csm", "csm_attn", "csr", "css"},
    "csm": set(C.to_dict(C.load_config(None))["csm"]),
    "mask": {"ratio", "csr_scale", "norm_pix"},
    "train": {
        "epochs", "warmup_epochs", "batch_size", "accum_steps", "blr", "min_lr", "weight_decay", "wd_exempt",
        "betas", "clip_grad", "precision", "ema_start", "ema_end", "ema_every",
    },
}  # fmt: skip


def test_every_value_of_the_paper_recipe_is_stated_and_marked_against_the_public_code():
    path = C.configs_dir() / "saip_lup1m_8gpu.yaml"
    raw = OmegaConf.to_container(OmegaConf.load(path))
    for section, keys in STATED.items():
        assert keys <= set(raw[section]), (section, keys - set(raw[section]))
    marker = re.compile(r"# \[(public|differs|run)\]")
    section_marked, unmarked = False, []
    for line in path.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        value = line.split("#", 1)[0].partition(":")[2].strip()
        if not line.startswith(" "):
            section_marked = bool(marker.search(line))  # a section's mark covers its plain values (loss)
        if value and not marker.search(line) and not (line.startswith(" ") and section_marked):
            unmarked.append(line.strip())
    assert not unmarked, unmarked


def test_the_one_gpu_recipe_is_the_paper_recipe_but_for_its_batch_split_and_teacher_cadence():
    eight, one = C.to_dict(C.load_config("saip_lup1m_8gpu")), C.to_dict(C.load_config("saip_1gpu"))
    differ = {
        f"{section}.{key}"
        for section, values in eight.items()
        if isinstance(values, dict)
        for key in values
        if one[section][key] != values[key]
    }
    assert differ == {
        "train.batch_size", "train.accum_steps", "train.num_workers", "train.checkpoint_every",
        "train.ema_every", "train.ema_start",
    }  # fmt: skip
    assert one["train"]["ema_start"] == pytest.approx(0.996**4, abs=1e-6)
    assert one["train"]["batch_size"] * one["train"]["accum_steps"] == 64 * 4 * 8


# ------------------------------------------------------------------------------------ the whole run
def test_a_run_wires_every_switch_into_the_trainer(tmp_path, monkeypatch):
    from saip_bench.pretrain.engine import run as R
    from tests.pretrain.test_resume import write_lup

    built = []

    class Spy(R.Trainer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            built.append(self)

    monkeypatch.setattr(R, "Trainer", Spy)
    write_lup(tmp_path / "LUP", n=4)
    overrides = [
        "model.depth=2", "model.embed_dim=32", "model.num_heads=2", "model.mid_block=0", "heads.out_dim=64",
        "heads.hidden_dim=32", "heads.bottleneck_dim=16", "views.local_crops=3", "train.batch_size=2",
        "train.accum_steps=2", "train.threads=1", "train.tensorboard=false", "train.warmup_steps=0",
        "train.clip_grad=null", "train.ema_every=micro_batch", "train.wd_exempt=public",
        "views.rescale_keep_aspect=true",
    ]  # fmt: skip
    cfg = R.build_config("smoke_cpu", steps=1, overrides=overrides)
    result = R.run_pretraining(cfg, tmp_path / "LUP", tmp_path / "run")
    assert result.steps == 1 and all(torch.isfinite(torch.tensor(v)) for v in result.last_losses.values())
    s = built[0].settings
    assert (s.clip_grad, s.ema_every, s.wd_exempt) == (None, "micro_batch", "public")
    exempt = {id(p) for p in built[0].optimizer.param_groups[1]["params"]}
    assert id(built[0].model.student["vit"].cls_token) not in exempt  # decayed under the public rule

    bad = R.build_config("smoke_cpu", steps=1, overrides=["train.ema_every=sometimes"])
    with pytest.raises(ConfigError, match="train.ema_every"):
        R.run_pretraining(bad, tmp_path / "LUP", tmp_path / "refused")
    assert not (tmp_path / "refused").exists()  # refused before anything was written
