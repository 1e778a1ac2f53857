"""Synthetic CUHK-PEDES and ICFG-PEDES: person crops with captions generated from the same appearance.

Writers only: the readers (:mod:`.common`, :mod:`.cuhk_pedes`, :mod:`.icfg_pedes`) import nothing from here.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from saip_bench.dataset_spec import SynthOptions
from saip_bench.errors import SaipError
from saip_bench.io import atomic_path
from saip_bench.synth.files import jpeg_bytes, require_empty
from saip_bench.tasks.text_retrieval.data import cuhk_pedes, icfg_pedes
from saip_bench.tasks.text_retrieval.data.common import PedesFormat, caption_tokens

log = logging.getLogger(__name__)

SYNTH_SIZE = (128, 64)  # (H, W): real crops vary in size and every recipe resizes; small keeps writers fast

#: ``file_path(split, pid, camid, n) -> str``: an image's path relative to ``imgs/``.
FilePath = Callable[[str, int, int, int], str]


def split_ids(n: int, splits: tuple[str, ...]) -> list[str]:
    """The split of each of ``n`` identities: train gets about 60 %, test (and val) share the rest.

    Every named split gets at least one identity when ``n`` allows; train and test always do.
    """
    if len(splits) == 2:
        n_test = max(1, n // 3)
        return ["train"] * (n - n_test) + ["test"] * n_test
    n_val = max(1, n // 5) if n >= 3 else 0
    n_test = max(1, n // 5)
    return ["train"] * (n - n_val - n_test) + ["val"] * n_val + ["test"] * n_test


def write_pedes(out: Path, options: SynthOptions, fmt: PedesFormat, file_path: FilePath) -> None:
    """Write a synthetic PEDES dataset into ``out`` (which may exist only if empty), atomically.

    Each of ``options.ids`` identities (at least 2: one train, one test) gets ``max(2, images // ids)``
    crops from random cameras; each crop gets ``fmt.captions_per_image`` captions generated from the
    identity's appearance, so text and image agree. ``file_path`` names each image under ``imgs/``.
    """
    from saip_bench.synth import SynthWorld
    from saip_bench.synth.caption import describe

    ids, images, seed = options.ids, options.images, options.seed
    if ids < 2:
        raise SaipError(f"{fmt.name} needs at least 2 identities (one train, one test), got {ids}")
    if images < 1:
        raise SaipError(f"{fmt.name}: images must be at least 1, got {images}")
    require_empty(out, fmt.name)
    rng = np.random.default_rng([seed % 2**63, 7])
    world = SynthWorld(seed)
    pids = [fmt.first_id + i for i in range(ids)]
    split_of = dict(zip(pids, [str(s) for s in rng.permutation(split_ids(ids, fmt.splits))], strict=True))
    per_id = max(2, images // ids)
    records: list[dict[str, Any]] = []
    with atomic_path(out) as tmp:
        for pid in pids:
            identity = world.identity(pid)
            for n in range(per_id):
                camid = int(rng.integers(1, 7))
                sample = world.render_person(identity, camid, size=SYNTH_SIZE, rng=rng)
                captions = [sample.caption] + [
                    describe(identity.appearance, rng) for _ in range(fmt.captions_per_image - 1)
                ]
                rel = file_path(split_of[pid], pid, camid, n)
                target = tmp / "imgs" / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(jpeg_bytes(sample.image))
                records.append({
                    "split": split_of[pid], "captions": captions, "file_path": rel,
                    "processed_tokens": [caption_tokens(c) for c in captions], "id": pid,
                })  # fmt: skip
        (tmp / fmt.json_name).write_text(json.dumps(records), encoding="utf-8")
    log.debug("wrote synthetic %s (%d ids, %d images) to %s", fmt.name, ids, len(records), out)


def write_cuhk_pedes(out: Path, options: SynthOptions) -> None:
    """A synthetic CUHK-PEDES (two captions per image, ``CUHK03/<pid>_<cam>_<n>.jpg``) into ``out``."""
    write_pedes(out, options, cuhk_pedes.FORMAT, lambda split, pid, camid, n: f"CUHK03/{pid}_{camid}_{n}.jpg")


def write_icfg_pedes(out: Path, options: SynthOptions) -> None:
    """A synthetic ICFG-PEDES (one caption per image, ``<split>/<pid>/<pid>_<cam>_<n>_synth_0.jpg``)."""
    write_pedes(
        out,
        options,
        icfg_pedes.FORMAT,
        lambda split, pid, camid, n: f"{split}/{pid:04d}/{pid:04d}_{camid:03d}_{n:02d}_synth_0.jpg",
    )
