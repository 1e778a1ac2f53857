"""A stand-in for ``xtcocotools`` backed by pycocotools, so ``mmpose.models`` imports under numpy 2.

mmpose imports ``xtcocotools.coco.COCO`` (and its COCOeval) at import time of ``mmpose.datasets``, which
``mmpose.models`` pulls in. The xtcocotools wheels on PyPI are built against numpy 1 and fail to import under
numpy 2. The suite computes every COCO metric itself through pycocotools
(:mod:`saip_bench.tasks.pose.metrics`),
so mmpose only needs the names to exist: this maps ``xtcocotools.coco``, ``xtcocotools.cocoeval`` and
``xtcocotools.mask`` onto pycocotools. mmpose's own ``CocoMetric`` (which passes xtcocotools-only arguments)
is not used by the suite. Installed only when the real xtcocotools does not import.
"""

from __future__ import annotations

import sys
import types

STAND_IN_FLAG = "__saip_bench_stand_in__"


def install() -> bool:
    """Install the stand-in unless xtcocotools imports; True if installed."""
    import importlib

    current = sys.modules.get("xtcocotools")
    if current is not None:
        return bool(getattr(current, STAND_IN_FLAG, False))
    try:
        importlib.import_module("xtcocotools.coco")
        return False
    except (ImportError, ValueError):  # ValueError: "numpy.dtype size changed" from a numpy-1 wheel
        for name in [n for n in sys.modules if n == "xtcocotools" or n.startswith("xtcocotools.")]:
            del sys.modules[name]
    from pycocotools import coco, cocoeval, mask

    package = types.ModuleType("xtcocotools", __doc__)
    package.__path__ = []  # a package, so "import xtcocotools.coco" resolves through sys.modules
    setattr(package, STAND_IN_FLAG, True)
    for short, real in (("coco", coco), ("cocoeval", cocoeval), ("mask", mask)):
        sub = types.ModuleType(f"xtcocotools.{short}", f"pycocotools.{short}, standing in for xtcocotools")
        sub.__dict__.update({k: v for k, v in vars(real).items() if not k.startswith("__")})
        setattr(package, short, sub)
        sys.modules[f"xtcocotools.{short}"] = sub
    sys.modules["xtcocotools"] = package
    return True
