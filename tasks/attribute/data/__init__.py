"""Attribute dataset formats: PA-100K (``pa100k``) and PETA-zs (``peta_zs``)."""

from __future__ import annotations

import importlib
from pathlib import Path

from saip_bench.registry import Registry
from saip_bench.tasks.attribute.data.common import AttributeSet

#: dataset registry name -> module providing ``load(root) -> AttributeSet``, ``check`` and ``write_synth``.
FORMATS: Registry[str] = Registry("attribute dataset")
FORMATS.add("pa100k", "saip_bench.tasks.attribute.data.pa100k")
FORMATS.add("peta_zs", "saip_bench.tasks.attribute.data.peta_zs")


def load_attribute_set(dataset: str, root: str | Path) -> AttributeSet:
    """Load ``dataset`` (``"pa100k"`` or ``"peta_zs"``) from its folder ``root``."""
    return importlib.import_module(FORMATS.get(dataset)).load(Path(root))


__all__ = ["FORMATS", "AttributeSet", "load_attribute_set"]
