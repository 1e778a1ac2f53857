"""saip-bench: SAIP pretraining and a 12-dataset human-centric benchmark for lightweight backbones.

After ``import saip_bench``, ``timm.create_model("saip_vit_tiny_patch16")`` works: the SAIP entrypoints are
registered with timm as soon as timm is imported (see ``saip_bench._timm_hook``), so commands that need
neither torch nor timm start without paying for them.
"""

from importlib.metadata import PackageNotFoundError, version

from saip_bench._timm_hook import register_with_timm

try:
    __version__ = version("saip-bench")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

register_with_timm()

__all__ = ["__version__"]
