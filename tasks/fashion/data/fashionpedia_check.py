"""Fashionpedia's format check: both splits validated by the loader, and every listed image present."""

from __future__ import annotations

from pathlib import Path

from saip_bench.errors import DataFormatError
from saip_bench.tasks.fashion.data.fashionpedia import SPLITS, load_split


def check(root: str | Path) -> dict[str, int]:
    """Validate both splits and that every image file exists; return counts.

    Returns:
        ``train_images``, ``val_images``, ``annotations`` (both splits), ``categories`` and ``attributes``
        (of the train file).
    """
    counts: dict[str, int] = {"annotations": 0}
    for split in SPLITS:
        data = load_split(root, split)
        missing = [image.path for image in data.images if not image.path.is_file()]
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise DataFormatError(missing[0], f"image listed in {data.json_path.name} is missing{more}")
        counts[f"{split}_images"] = len(data.images)
        counts["annotations"] += data.num_annotations
        if split == "train":
            counts["categories"] = len(data.categories)
            counts["attributes"] = len(data.attributes)
    return counts
