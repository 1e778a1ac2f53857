"""benchmarks/reid_feature_signal.py runs as a user types it, on a small synthetic Market-1501."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from saip_bench.datasets import DATASETS

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "reid_feature_signal.py"


def test_it_prints_pixel_and_backbone_map_for_every_feature(tmp_path: Path) -> None:
    spec = DATASETS.get("market1501")
    spec.write_synth(tmp_path / spec.folder, ids=6, images=36, seed=0)
    args = [str(tmp_path / spec.folder), "--backbone", "random:saip_vit_tiny_patch16", "--size", "64", "32"]
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    found = dict(re.findall(r"^\s+(.+?): mAP ([0-9.]+), R1", done.stdout, flags=re.M))
    assert {f"pixels averaged {g}" for g in ("1x1", "2x1", "4x1", "8x4", "16x8")} <= set(found)
    vit = {name for name in found if name.startswith("random:saip_vit_tiny_patch16: ")}
    # the patch embedding, blocks 4 / 8 / 12, the CLS embedding, the flattened tokens
    assert len(vit) == 6 and any("final CLS" in name for name in vit)
    assert all(0.0 < float(value) <= 100.0 for value in found.values())
