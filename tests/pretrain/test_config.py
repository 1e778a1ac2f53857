"""Pretraining config: defaults + recipe + key=value overrides; unknown keys are errors naming the key."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from saip_bench.errors import ConfigError
from saip_bench.pretrain import config as C
from saip_bench.pretrain import methods


def test_recipe_and_overrides_merge_in_order():
    cfg = C.load_config("smoke_cpu", ["train.steps=7", "loss.csr=0", "model.img_size=[32,16]"])
    assert cfg.train.steps == 7
    assert cfg.loss.csr == 0
    assert list(cfg.model.img_size) == [32, 16]
    assert cfg.train.batch_size == 8  # from the recipe
    assert cfg.train.betas[1] == 0.95  # from the defaults


@pytest.mark.parametrize("override", ["train.stepz=3", "nothing=1", "heads.out_dimm=5"])
def test_unknown_override_key_is_named(override):
    key = override.split("=")[0]
    with pytest.raises(ConfigError, match=f"unknown config key '{key}'"):
        C.load_config("smoke_cpu", [override])


def test_unknown_key_in_recipe_names_file_and_key(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("train:\n  batchsize: 3\n")
    with pytest.raises(ConfigError) as info:
        C.load_config(recipe)
    assert "train.batchsize" in str(info.value) and str(recipe) in str(info.value)


def test_bad_inputs_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="key=value"):
        C.load_config(None, ["train.steps"])
    with pytest.raises(ConfigError, match="no such config file"):
        C.load_config(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match="broken.yaml"):
        C.load_config(broken)
    with pytest.raises(ConfigError, match="train.batch_size"):
        C.load_config(None, ["train.batch_size=abc"])


def test_the_malloc_threshold_is_null_by_default_and_a_number_when_set():
    assert C.load_config(None).train.malloc_mmap_threshold_mb is None  # glibc's own, adaptive
    assert C.load_config(None, ["train.malloc_mmap_threshold_mb=2.0"]).train.malloc_mmap_threshold_mb == 2.0
    for bad in ("abc", "-1"):
        with pytest.raises(ConfigError, match="train.malloc_mmap_threshold_mb"):
            C.load_config(None, [f"train.malloc_mmap_threshold_mb={bad}"])


def test_resolved_config_round_trips(tmp_path):
    cfg = C.load_config("smoke_cpu", ["seed=3"])
    path = C.write_resolved(cfg, tmp_path)
    again = C.load_config(path)
    assert C.to_dict(again) == C.to_dict(cfg)
    assert C.config_digest(again) == C.config_digest(cfg)
    assert C.config_digest(C.load_config("smoke_cpu", ["seed=4"])) != C.config_digest(cfg)


@pytest.mark.parametrize("recipe", sorted(p.stem for p in C.configs_dir().glob("*.yaml")))
def test_every_shipped_recipe_loads_and_resolves(recipe):
    cfg = C.load_config(recipe)
    spec = methods.resolve(cfg.method, cfg.objectives, dict(cfg.loss))
    assert spec.terms
    assert OmegaConf.is_readonly(cfg)


def test_paper_recipe_numbers():
    cfg = C.load_config("saip_lup1m_8gpu")
    t = cfg.train
    assert (t.batch_size * t.accum_steps * 8, t.blr, t.epochs, t.warmup_epochs) == (2048, 2.5e-4, 300, 10)
    assert (cfg.heads.out_dim, cfg.views.local_crops, cfg.mask.ratio) == (65536, 8, 0.75)
    one = C.load_config("saip_1gpu").train
    assert one.batch_size * one.accum_steps == 2048


def test_method_resolution_and_ablation():
    spec = methods.resolve("saip", "csm,csr", {"csm": 1.0, "csr": 0.5})
    assert spec.terms == ("csm", "csr") and spec.weights == {"csm": 1.0, "csr": 0.5}
    assert not spec.needs_composite and spec.needs_teacher
    assert methods.resolve("saip", None, {"css": 0.0}).terms == ("csm", "csm_attn", "csr")
    assert not methods.resolve("mae", None, {}).needs_teacher
    with pytest.raises(ConfigError, match="not a term of method 'saip'"):
        methods.resolve("saip", "csm,mae", {})
    with pytest.raises(ConfigError, match="valid names"):
        methods.resolve("byol", None, {})
    with pytest.raises(ConfigError, match="nothing to train"):
        methods.resolve("dino", None, {"dino": 0})
