"""Fashionpedia's format: loader, check and synthetic writer (:mod:`.fashionpedia`)."""

from saip_bench.tasks.fashion.data.fashionpedia import (
    CATEGORIES,
    FashionImage,
    FashionSplit,
    load_split,
    validate,
)

__all__ = ["CATEGORIES", "FashionImage", "FashionSplit", "load_split", "validate"]
