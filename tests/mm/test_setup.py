"""``setup_mm``: mmpose and mmdet import and know ``SaipBackbone``; a broken install is one clear line.

The import check runs in a fresh interpreter, since ``mmcv._ext`` and ``xtcocotools`` are process-wide and
another test may already have installed the stand-ins. The error paths run in-process with a faked
``saip_bench.mm._version`` and an empty ``_DONE`` cache.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import saip_bench.mm as mm
from saip_bench.errors import SaipError

PROBE = r"""
import dataclasses, json, torch
torch.set_num_threads(1)
from saip_bench.mm import setup_mm
status = setup_mm("mmpose", "mmdet")
import mmdet.models, mmpose.models
from mmdet.registry import MODELS as DET
from mmpose.registry import MODELS as POSE
from saip_bench.mm.backbone import SaipMMBackbone

spec = "random:saip_vit_tiny_patch16"
out = {"status": dataclasses.asdict(status), "again": setup_mm("mmdet", "mmpose") is status}
x = torch.randn(1, 3, 128, 96)
for name, registry in (("mmdet", DET), ("mmpose", POSE)):
    out[name] = {"class": registry.get("SaipBackbone") is SaipMMBackbone}
    for mode in ("last", "pyramid"):
        model = registry.build(dict(type="SaipBackbone", spec=spec, img_size=(128, 96), out=mode))
        with torch.no_grad():
            maps = model(x)
        out[name][mode] = {"shapes": [list(m.shape) for m in maps], "strides": model.out_strides,
                           "channels": model.out_channels, "type": type(maps).__name__}
print("JSON" + json.dumps(out, default=list))
"""


@pytest.fixture(scope="module")
def probe() -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=180, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    line = [ln for ln in done.stdout.splitlines() if ln.startswith("JSON")][-1]
    return json.loads(line[4:])


def test_setup_mm_makes_mm_models_import(probe: dict) -> None:
    status = probe["status"]
    assert sorted(status["packages"]) == ["mmdet", "mmpose"]
    assert status["mmcv"].startswith("mmcv")
    assert probe["again"] is True  # idempotent: the cached status, in any package order


@pytest.mark.parametrize("registry", ["mmdet", "mmpose"])
def test_saip_backbone_builds_last_map(probe: dict, registry: str) -> None:
    last = probe[registry]["last"]
    assert probe[registry]["class"] is True
    assert last["type"] == "tuple"
    assert last["shapes"] == [[1, 192, 128 // 16, 96 // 16]]
    assert last["strides"] == [16] and last["channels"] == [192]


@pytest.mark.parametrize("registry", ["mmdet", "mmpose"])
def test_saip_backbone_builds_pyramid(probe: dict, registry: str) -> None:
    pyramid = probe[registry]["pyramid"]
    assert pyramid["strides"] == [8, 16, 32]
    assert pyramid["channels"] == [256, 256, 256]
    assert pyramid["shapes"] == [[1, 256, 128 // s, 96 // s] for s in (8, 16, 32)]


@pytest.fixture
def fake_install(monkeypatch: pytest.MonkeyPatch):
    """Returns ``set(versions)``: the installed distributions ``setup_mm`` sees (others: not installed)."""
    monkeypatch.setattr(mm, "_DONE", {})

    def set_versions(versions: dict[str, str]) -> None:
        monkeypatch.setattr(mm, "_version", lambda dist: versions.get(dist))

    return set_versions


FULL = {"mmengine": "0.10.7", "mmcv-lite": "2.1.0", "mmdet": "3.3.0", "mmpose": "1.3.2"}


def _one_line(err: pytest.ExceptionInfo[SaipError]) -> str:
    text = str(err.value)
    assert text and "\n" not in text
    return text


@pytest.mark.parametrize("missing", ["mmpose", "mmdet", "mmengine"])
def test_missing_mm_package_says_how_to_install(fake_install, missing: str) -> None:
    fake_install({k: v for k, v in FULL.items() if k != missing})
    package = missing if missing != "mmengine" else "mmdet"
    with pytest.raises(SaipError) as err:
        mm.setup_mm(package)
    text = _one_line(err)
    assert f"{missing} is not installed" in text
    assert mm.INSTALL_HINT in text
    assert package not in ",".join(mm._DONE)  # a failed setup is not cached


def test_missing_mmcv_says_how_to_install(fake_install) -> None:
    fake_install({k: v for k, v in FULL.items() if k != "mmcv-lite"})
    with pytest.raises(SaipError) as err:
        mm.setup_mm("mmdet")
    text = _one_line(err)
    assert "mmcv is not installed" in text and mm.INSTALL_HINT in text
    assert "mmcv-lite" in mm.INSTALL_HINT  # the hint must actually install an mmcv


def test_mmcv_and_mmcv_lite_together_say_keep_one(fake_install) -> None:
    fake_install({**FULL, "mmcv": "2.1.0"})
    with pytest.raises(SaipError) as err:
        mm.setup_mm("mmpose")
    text = _one_line(err)
    assert "mmcv 2.1.0" in text and "mmcv-lite 2.1.0" in text
    assert "pip uninstall -y mmcv-lite" in text and "pip uninstall -y mmcv mmcv-lite" in text


def test_unknown_package_is_a_programming_error(fake_install) -> None:
    fake_install(FULL)
    with pytest.raises(ValueError, match="mmseg"):
        mm.setup_mm("mmseg")
