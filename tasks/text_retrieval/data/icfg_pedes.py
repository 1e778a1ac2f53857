"""ICFG-PEDES: ``imgs/{train,test}/`` + ``ICFG-PEDES.json``; splits train / test, identity ids from 0.

Real ``file_path`` values look like ``test/0027/0027_010_01_0303morning_0015_0.jpg`` (relative to
``imgs/``), one caption per image. The synthetic writer keeps that shape.
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

FOLDER = "ICFG-PEDES"
FORMAT = PedesFormat("ICFG-PEDES", "ICFG-PEDES.json", ("train", "test"), first_id=0, captions_per_image=1)


def load_icfg_pedes(root: str | Path) -> PedesData:
    """Read an ICFG-PEDES folder (see :func:`~saip_bench.tasks.text_retrieval.data.common.load_pedes`)."""
    return load_pedes(root, FORMAT)


def check(root: str | Path) -> dict[str, int]:
    """Validate an ICFG-PEDES folder; counts of images, ids, captions and per split."""
    return check_pedes(root, FORMAT)


def write_synth(out: str | Path, *, ids: int, images: int, seed: int) -> None:
    """Write a synthetic ICFG-PEDES (one caption per image) into ``out``."""
    write_pedes_synth(
        out, FORMAT, ids=ids, images=images, seed=seed,
        file_path=lambda split, pid, camid, n: f"{split}/{pid:04d}/{pid:04d}_{camid:03d}_{n:02d}_synth_0.jpg",
    )  # fmt: skip


#: The dataset registry's entry point (``DATASETS.get(name).load(root, ...)``).
load = load_icfg_pedes
