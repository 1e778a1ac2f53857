"""OpenMMLab integration: make mmpose and mmdet import on any install and know the suite's backbone.

Call :func:`setup_mm` before importing ``mmpose.models`` or ``mmdet.models``. It

1. checks that mmengine, mmcv (full or lite), and the requested mm packages are installed, and raises one
   :class:`~saip_bench.errors.SaipError` line with the install command when they are not;
2. installs the torchvision stand-in for ``mmcv._ext`` when the compiled mmcv ops are absent (mmcv-lite), see
   :mod:`saip_bench.mm.ext_fallback`, and the pycocotools stand-in for ``xtcocotools`` when its numpy-1
   wheel does not import, see :mod:`saip_bench.mm.xtcoco_fallback`;
3. registers :class:`~saip_bench.mm.backbone.SaipMMBackbone` as ``SaipBackbone`` in the MODELS registry of
   mmpose and of mmdet.

Checkpoints: the suite never lets mmengine write or resume its own pickled checkpoints (they need
``weights_only=False`` under torch >= 2.6). Training runs through
:func:`saip_bench.engine.fit`, whose
checkpoints hold tensors and plain Python values only and load with ``weights_only=True``; pretrained weights
enter as the suite's safetensors backbone files.
"""

from __future__ import annotations

import importlib
import importlib.metadata as metadata
from dataclasses import dataclass

from saip_bench.errors import SaipError

#: What the README installs for the mm stack on a CPU machine (see README, "The OpenMMLab stack").
INSTALL_HINT = 'pip install -e ".[mm,mmcv-lite]" && pip install --no-deps "mmpose>=1.3.2,<1.4"'


@dataclass(frozen=True)
class MMStatus:
    """What :func:`setup_mm` found and did."""

    mmcv: str  # "mmcv 2.1.0 (compiled ops)" or "mmcv-lite 2.1.0 (torchvision stand-in for nms/roi_align)"
    ext_stand_in: bool
    xtcocotools_stand_in: bool
    packages: tuple[str, ...]


_DONE: dict[str, MMStatus] = {}


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _require(module: str, dist: str) -> None:
    if _version(dist) is None:
        raise SaipError(
            f"{dist} is not installed; the pose/parsing/detection tasks need the mm stack: {INSTALL_HINT}"
        )
    importlib.import_module(module)


def setup_mm(*packages: str) -> MMStatus:
    """Prepare the mm stack for ``packages`` (``"mmpose"``, ``"mmdet"``); idempotent.

    Raises:
        SaipError: a package is missing, or both mmcv and mmcv-lite are installed (they share the ``mmcv``
            folder, so each overwrites the other's files).
    """
    key = ",".join(sorted(packages))
    if key in _DONE:
        return _DONE[key]
    unknown = [p for p in packages if p not in ("mmpose", "mmdet")]
    if unknown:
        raise ValueError(f"setup_mm: unknown package {unknown[0]!r} (valid: mmpose, mmdet)")
    full, lite = _version("mmcv"), _version("mmcv-lite")
    if full and lite:
        raise SaipError(
            f"both mmcv {full} and mmcv-lite {lite} are installed; they write the same mmcv/ folder. "
            "Keep one: "
            "pip uninstall -y mmcv-lite && pip install --force-reinstall --no-deps mmcv (compiled ops), or "
            "pip uninstall -y mmcv mmcv-lite && pip install mmcv-lite (CPU, torchvision stand-in)"
        )
    if not (full or lite):
        raise SaipError(
            f"mmcv is not installed; the pose/parsing/detection tasks need the mm stack: {INSTALL_HINT}"
        )
    _require("mmengine", "mmengine")
    from saip_bench.mm import ext_fallback, xtcoco_fallback

    ext = ext_fallback.install()
    xt = xtcoco_fallback.install() if "mmpose" in packages else False
    from saip_bench.mm.backbone import SaipMMBackbone

    for package in packages:
        _require(f"{package}.models", package)
        registry = importlib.import_module(f"{package}.registry").MODELS
        if registry.get("SaipBackbone") is None:
            registry.register_module("SaipBackbone", module=SaipMMBackbone)
    if full and not ext:
        name = f"mmcv {full} (compiled ops)"
    elif full:  # full mmcv whose compiled extension does not import (built for another torch, say)
        name = f"mmcv {full} without its compiled ops (torchvision stand-in for nms/roi_align)"
    else:
        name = f"mmcv-lite {lite} (torchvision stand-in for nms/roi_align)"
    status = MMStatus(name, ext, xt, tuple(sorted(packages)))
    _DONE[key] = status
    return status


__all__ = ["INSTALL_HINT", "MMStatus", "setup_mm"]
