"""CUHK-PEDES: ``imgs/`` + ``reid_raw.json``; splits train / val / test, identity ids from 1.

Real ``file_path`` values look like ``CUHK01/0363004.png`` or ``train_query/p8130_s10987.jpg`` (relative to
``imgs/``); most images carry two captions. The synthetic writer keeps that shape.
"""

from __future__ import annotations

from pathlib import Path

from saip_bench.tasks.text_retrieval.data.common import (
    PedesData,
    PedesFormat,
    check_pedes,
    load_pedes,
    write_pedes_synth,
)

FOLDER = "CUHK-PEDES"
FORMAT = PedesFormat(
    "CUHK-PEDES", "reid_raw.json", ("train", "val", "test"), first_id=1, captions_per_image=2
)


def load_cuhk_pedes(root: str | Path) -> PedesData:
    """Read a CUHK-PEDES folder (see :func:`~saip_bench.tasks.text_retrieval.data.common.load_pedes`)."""
    return load_pedes(root, FORMAT)


def check(root: str | Path) -> dict[str, int]:
    """Validate a CUHK-PEDES folder; counts of images, ids, captions and per split."""
    return check_pedes(root, FORMAT)


def write_synth(out: str | Path, *, ids: int, images: int, seed: int) -> None:
    """Write a synthetic CUHK-PEDES (two captions per image) into ``out``."""
    write_pedes_synth(
        out, FORMAT, ids=ids, images=images, seed=seed,
        file_path=lambda split, pid, camid, n: f"CUHK03/{pid}_{camid}_{n}.jpg",
    )  # fmt: skip


#: The dataset registry's entry point (``DATASETS.get(name).load(root, ...)``).
load = load_cuhk_pedes
