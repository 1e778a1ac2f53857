"""Is the mm stack installed? Answered from package metadata only (no import, milliseconds)."""

from __future__ import annotations

import importlib.metadata as metadata


def _installed(dist: str) -> bool:
    try:
        metadata.version(dist)
    except metadata.PackageNotFoundError:
        return False
    return True


def missing_mm(*packages: str) -> list[str]:
    """The distributions missing for ``packages`` (``"mmpose"``, ``"mmdet"``): empty when all are there.

    mmcv counts as present when either the compiled ``mmcv`` or ``mmcv-lite`` is installed.
    """
    missing = [dist for dist in ("mmengine", *packages) if not _installed(dist)]
    if not (_installed("mmcv") or _installed("mmcv-lite")):
        missing.append("mmcv (or mmcv-lite)")
    return missing
