"""Fashionpedia's format: constants (:mod:`.fashionpedia_meta`), validating loader (:mod:`.fashionpedia`),
check (:mod:`.fashionpedia_check`) and synthetic writer (:mod:`.synth`).

Read a split through the registry: ``DATASETS.get("fashionpedia").load(root, "val") -> FashionSplit``.
"""

from saip_bench.tasks.fashion.data.fashionpedia import FashionImage, FashionSplit, load_split, validate
from saip_bench.tasks.fashion.data.fashionpedia_meta import CATEGORIES

__all__ = ["CATEGORIES", "FashionImage", "FashionSplit", "load_split", "validate"]
