"""benchmarks/attribute_feature_signal.py runs as a user types it, on a small synthetic PA-100K."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from saip_bench.datasets import DATASETS

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "attribute_feature_signal.py"


def test_it_prints_the_probe_ma_of_pixels_and_of_every_backbone_readout(tmp_path: Path) -> None:
    spec = DATASETS.get("pa100k")
    spec.write_synth(tmp_path / spec.folder, ids=8, images=48, seed=0)
    args = [str(tmp_path / spec.folder), "--backbone", "random:saip_vit_tiny_patch16", "--size", "64", "32"]
    args += ["--probe-steps", "20", "50"]
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    found = {name: (float(a), float(b)) for name, a, b in
             re.findall(r"^\s+(.+?): mA ([0-9.]+) / ([0-9.]+)$", done.stdout, flags=re.M)}  # fmt: skip
    assert {f"pixels {g}" for g in ("1x1", "8x4", "16x8")} <= set(found)
    vit = {name.split(": ", 1)[1] for name in found if name.startswith("random:saip_vit_tiny_patch16: ")}
    # 64x32 inputs: a 4x2 token grid, flattened as such
    assert vit == {
        "CLS (the embedding)",
        "mean patch token",
        "patch tokens, 4x2 grid",
        "patch tokens, 4x2 flattened",
    }
    assert all(0.0 <= value <= 100.0 for pair in found.values() for value in pair)
