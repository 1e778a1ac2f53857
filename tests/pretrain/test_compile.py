"""``train.compile``: which devices compile, and a compiled model keeps its names, state_dict and math."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from saip_bench.engine.checkpoint import load_checkpoint
from saip_bench.errors import ConfigError
from saip_bench.pretrain.engine import run as run_module
from saip_bench.pretrain.engine.compile import compile_model, compile_targets, resolve_compile
from saip_bench.pretrain.meta_arch import ArchSettings, MetaArch
from saip_bench.pretrain.methods import resolve

from .test_meta_arch import TINY, batch  # noqa: F401  (the module-scoped batch fixture)
from .test_pretrain_cli import FAST, lup, pretrain  # noqa: F401  (the module-scoped data fixture)


def test_auto_compiles_on_cuda_only_and_bad_values_are_refused():
    assert resolve_compile("auto", "cuda") and not resolve_compile("auto", "cpu")
    assert resolve_compile(True, "cpu") and resolve_compile("true", "cpu")
    assert not resolve_compile(False, "cuda") and not resolve_compile("false", "cuda")
    with pytest.raises(ConfigError, match="train.compile='fast'"):
        resolve_compile("fast", "cpu")


def test_compiled_in_place_same_state_dict_same_losses_and_gradients(batch):  # noqa: F811
    spec = resolve("saip", None, {})
    torch.manual_seed(0)
    eager = MetaArch(spec, ArchSettings(**TINY)).train()
    torch.manual_seed(0)
    compiled = MetaArch(spec, ArchSettings(**TINY)).train()
    keys = list(compiled.state_dict())
    n = compile_model(compiled, backend="eager")  # dynamo traces every target; no code generation
    targets = compile_targets(compiled)
    assert n == len(targets) > 10 and all(getattr(m, "_compiled_call_impl", None) for m in targets)
    assert list(compiled.state_dict()) == keys == list(eager.state_dict())
    assert [n for n, _ in compiled.export_vit()[0].named_parameters()] == [
        n for n, _ in eager.export_vit()[0].named_parameters()
    ]
    out_e, out_c = eager(batch, 3), compiled(batch, 3)
    for term in ("loss", "csm", "csm_attn", "csr", "css"):
        torch.testing.assert_close(out_c[term], out_e[term])
    out_e["loss"].backward()
    out_c["loss"].backward()
    for (name, p_e), p_c in zip(eager.student.named_parameters(), compiled.student.parameters(), strict=True):
        assert (p_e.grad is None) == (p_c.grad is None), name
        if p_e.grad is not None:
            torch.testing.assert_close(p_c.grad, p_e.grad, msg=name)


def test_a_compiled_run_checkpoints_the_uncompiled_keys(lup, tmp_path, monkeypatch):  # noqa: F811
    calls = []

    def eager_backend(model):
        calls.append(type(model).__name__)
        return compile_model(model, backend="eager")

    monkeypatch.setattr(run_module, "compile_model", eager_backend)
    res = pretrain(
        "--config", "smoke_cpu", "--data", str(lup), "--out", str(tmp_path / "r"), "--steps", "2",
        "train.compile=true", *FAST,
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert calls == ["MetaArch"]
    model = load_checkpoint(tmp_path / "r" / "checkpoint.pt")["model"]
    cfg = run_module.build_config("smoke_cpu", overrides=list(FAST))
    fresh = MetaArch.from_config(cfg, resolve(cfg.method, cfg.objectives, dict(cfg.loss)))
    assert list(model) == list(fresh.state_dict())


def test_a_bad_value_is_one_line_from_the_real_cli(lup, tmp_path):  # noqa: F811
    res = subprocess.run(
        [str(Path(sys.executable).with_name("saip")), "pretrain", "--config", "smoke_cpu", "--data", str(lup),
         "--out", str(tmp_path / "r"), "train.compile=sometimes"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    output = res.stdout + res.stderr
    assert res.returncode == 1
    assert "train.compile='sometimes'" in output and "Traceback" not in output
    assert not (tmp_path / "r").exists()
