"""saip-bench: SAIP pretraining and a 12-dataset human-centric benchmark for lightweight backbones.

Importing the package registers the SAIP backbones with timm, so
``timm.create_model("saip_vit_tiny_patch16")`` works after ``import saip_bench``.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("saip-bench")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

from saip_bench import backbones as backbones  # noqa: E402  (registers the timm entrypoints)

__all__ = ["__version__", "backbones"]
