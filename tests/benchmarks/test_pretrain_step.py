"""benchmarks/pretrain_step.py and benchmarks/saipv1_reference.py: the script runs, the harness that patches
the public SAIPv1 code does what it says (on a fake checkout: the public code is not needed here)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from saip_bench.errors import SaipError

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def ref_harness() -> Iterator[types.ModuleType]:
    spec = importlib.util.spec_from_file_location("saipv1_reference", BENCHMARKS / "saipv1_reference.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def test_tiny_benchmark_runs_in_a_fresh_process_and_prints_ours_only():
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / "pretrain_step.py"), "--tiny", "--steps", "1", "--threads", "1"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert any(line.startswith("saip-bench (fp32): ") and "images/s" in line for line in lines)
    assert any(line.startswith("load average (1/5/15 min) before: ") for line in lines)
    assert any(line.startswith("peak RSS: ") for line in lines)
    summary = dict(kv.split("=", 1) for kv in lines[-1].removeprefix("summary: ").split())
    assert lines[-1].startswith("summary: ")
    assert float(summary["ours_images_per_s"]) > 0
    assert float(summary["ours_gflop_per_image"]) > 0
    # Without --reference: no reference figures and no ratio (nothing hard-coded to divide by).
    assert "ratio" not in summary and not any(k.startswith("ref_") for k in summary)
    assert not any("ratio" in line or line.startswith("reference") for line in lines)


def test_only_reference_needs_a_reference():
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / "pretrain_step.py"), "--only", "reference"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "--only reference needs --reference" in proc.stderr


def _fake_checkout(root: Path, patches, drop: int | None = None) -> Path:
    """A folder holding, per patched file, every patched text once (but patch ``drop``)."""
    texts: dict[str, str] = {}
    for i, p in enumerate(patches):
        texts.setdefault(p.file, "")
        if i != drop:
            texts[p.file] += f"# before {i}\n{p.old}\n"
    for name in ("main_pretrain.py", "models_pretrain.py"):
        texts.setdefault(name, "")
    for name, text in texts.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_every_patch_is_applied_in_the_copy_only(ref_harness, tmp_path):
    patches = ref_harness.PATCHES
    src = _fake_checkout(tmp_path / "src", patches)
    before = {p.file: (src / p.file).read_text() for p in patches}
    ref_harness.patch_checkout(src, tmp_path / "copy")
    for file, text in before.items():
        expected = text
        for p in patches:
            if p.file == file:
                expected = expected.replace(p.old, p.new)
        assert (tmp_path / "copy" / file).read_text() == expected
        assert (src / file).read_text() == text  # the user's checkout is untouched
    assert all(p.why for p in patches)


def test_a_line_not_found_is_an_error_naming_the_file(ref_harness, tmp_path):
    patches = ref_harness.PATCHES
    missing = next(i for i, p in enumerate(patches) if p.file == "util/misc.py")
    src = _fake_checkout(tmp_path / "src", patches, drop=missing)
    with pytest.raises(SaipError, match=r"util/misc\.py: the line .* occurs 0 times"):
        ref_harness.patch_checkout(src, tmp_path / "copy")
    with pytest.raises(SaipError, match="not a checkout of stoa-xh91/SAIPv1"):
        ref_harness.patch_checkout(tmp_path / "empty", tmp_path / "copy2")


def test_the_public_modules_are_imported_from_the_copy_and_taken_out_again(
    ref_harness, tmp_path, monkeypatch
):
    src = tmp_path / "src"
    (src / "util").mkdir(parents=True)
    (src / "util" / "__init__.py").write_text("WHERE = __file__\n")
    (src / "main_pretrain.py").write_text("import util\nVALUE = 1\n")
    (src / "models_pretrain.py").write_text("VALUE = 2\n")
    other_util = types.ModuleType("util")  # a module of the same generic name imported before
    monkeypatch.setitem(sys.modules, "util", other_util)

    with ref_harness.load_reference(src, patches=()) as ref:
        assert (ref.main_pretrain.VALUE, ref.models_pretrain.VALUE) == (1, 2)
        copy = Path(ref.main_pretrain.util.WHERE).parents[1]
        assert copy != src and copy.is_dir()
    assert sys.modules["util"] is other_util
    assert "main_pretrain" not in sys.modules and "models_pretrain" not in sys.modules
    assert not copy.exists()


def test_samples_follow_the_public_view_order(ref_harness):
    from saip_bench.pretrain.views import INSTANCE, REGION

    b, n_local = 2, 4
    globals_ = torch.arange(2 * b, dtype=torch.float32).view(-1, 1, 1, 1).expand(-1, 3, 4, 2)
    locals_ = 100 + torch.arange(n_local * b, dtype=torch.float32).view(-1, 1, 1, 1).expand(-1, 3, 2, 2)
    masks = torch.zeros(b, 2, 6, 6)
    masks[:, INSTANCE, :2] = 1.0
    masks[:, REGION, 4:] = 1.0
    batch = {
        "globals": globals_,
        "locals": locals_,
        "composite": torch.full((b, 3, 6, 6), -1.0),
        "masks": masks,
    }

    samples = ref_harness.samples_from_batch(batch)
    assert len(samples) == 2 + n_local + 3
    for v in range(2):  # view-major rows v*B + i
        assert samples[v][:, 0, 0, 0].tolist() == [v * b, v * b + 1]
    for v in range(n_local):
        assert samples[2 + v][:, 0, 0, 0].tolist() == [100 + v * b, 100 + v * b + 1]
    assert torch.equal(samples[-3], batch["composite"])
    # The public code reads gt_mask = samples[-2:]: [instance (global view 1, small), region (local L-1)].
    assert (
        samples[-2].shape == (b, 6, 6) and samples[-2][:, :2].eq(1).all() and samples[-2][:, 2:].eq(0).all()
    )
    assert samples[-1][:, 4:].eq(1).all() and samples[-1][:, :4].eq(0).all()


def test_gpu_script_prints_its_commands():
    proc = subprocess.run(
        ["bash", str(BENCHMARKS / "gpu.sh"), "--print"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for batch in (64, 256):
        assert f"pretrain_step.py --device cuda --precision bf16 --batch-size {batch} " in out
    tasks = [line.split("--task ")[1].split()[0] for line in out.splitlines() if "saip evaluate" in line]
    from saip_bench.datasets import DATASETS

    assert sorted(tasks) == sorted({spec.task for _, spec in DATASETS.items()})  # one smoke per task
    assert all("--device cuda" in line for line in out.splitlines() if "saip evaluate" in line)
    bad = subprocess.run(["bash", str(BENCHMARKS / "gpu.sh"), "--bogus"], capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown option --bogus" in bad.stderr
