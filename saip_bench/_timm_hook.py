"""Register the SAIP backbones with timm whenever timm is imported, without importing timm ourselves.

Importing torch and timm takes seconds, and ``saip --help``, ``saip report`` or ``saip data check`` need
neither. But ``timm.create_model("saip_vit_tiny_patch16")`` must work in any process that imported saip_bench.
So ``import saip_bench`` registers the entrypoints at once if timm is already imported, and otherwise right
after timm's own import finishes.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType


def _register() -> None:
    import saip_bench.backbones  # noqa: F401  (its modules hold the @register_model entrypoints)


class _AfterTimmImport(importlib.abc.MetaPathFinder):
    """A one-shot finder: lets the normal finders locate timm, then runs :func:`_register` after it loads."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname != "timm":
            return None
        sys.meta_path.remove(self)  # one shot, and no recursion into ourselves below
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        exec_timm = spec.loader.exec_module

        def exec_module(module: ModuleType) -> None:
            exec_timm(module)
            _register()

        spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def register_with_timm() -> None:
    """Make the SAIP entrypoints exist whenever timm does (now, or as soon as timm is imported)."""
    if "timm" in sys.modules:
        _register()
    elif not any(isinstance(f, _AfterTimmImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _AfterTimmImport())
