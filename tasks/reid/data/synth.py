"""Synthetic Market-1501 and MSMT17_V1 in their real layouts, drawn by :class:`saip_bench.synth.SynthWorld`.

Writers only: the readers (:mod:`.market1501`, :mod:`.msmt17`) import nothing from here.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from PIL import Image

from saip_bench.dataset_spec import SynthOptions
from saip_bench.errors import ConfigError, SaipError
from saip_bench.io import atomic_path
from saip_bench.synth.files import jpeg_bytes, require_empty
from saip_bench.tasks.reid.data import market1501, msmt17

log = logging.getLogger(__name__)

CROP_SIZE = (128, 64)  # (H, W) of the released crops


def _camera_counts(rng: np.random.Generator, n_images: int) -> dict[int, int]:
    """Spread one person's images over 2-6 cameras; the first camera gets at least 2 (one can be a query)."""
    k = int(rng.integers(2, min(market1501.NUM_CAMERAS, n_images - 1) + 1))
    cams = [int(c) + 1 for c in rng.permutation(market1501.NUM_CAMERAS)[:k]]
    counts = {c: 1 for c in cams}
    counts[cams[0]] += 1
    for _ in range(n_images - k - 1):
        counts[cams[int(rng.integers(k))]] += 1
    return counts


def write_market1501(out: Path, options: SynthOptions) -> None:
    """Write a synthetic Market-1501 into the folder ``out`` (its content: the three split folders).

    Rules: ``ids // 2`` training identities and the rest test identities (disjoint); every identity gets
    ``max(3, images // ids)`` crops over 2-6 cameras. For each test identity and camera with at least two of
    its crops, one crop (two when it has four or more) goes to ``query/``; all other test crops go to
    ``bounding_box_test/``, plus ``max(1, n_test // 2)`` distractors (``0000``) and ``max(1, n_test // 4)``
    junk crops (``-1``). Crops are 128x64 like the release's. ``out`` may exist only if empty; it is
    written atomically (all or nothing). Needs at least 2 identities.
    """
    from saip_bench.synth import SynthWorld

    ids, images, seed = options.ids, options.images, options.seed
    if ids < 2:
        raise SaipError(f"market1501 needs at least 2 identities (one train, one test), got {ids}")
    if images < 1:
        raise SaipError(f"market1501: images must be at least 1, got {images}")
    require_empty(out, "market1501")
    rng = np.random.default_rng([seed % 2**63, 1501])
    world = SynthWorld(seed)
    id_space = 1501 if ids <= 1500 else 9999
    pids = sorted(int(p) + 1 for p in rng.choice(id_space, size=ids, replace=False))
    order = [int(i) for i in rng.permutation(ids)]
    n_train = ids // 2
    train_ids, test_ids = sorted(pids[i] for i in order[:n_train]), sorted(pids[i] for i in order[n_train:])
    per_id = max(3, images // ids)
    used: set[str] = set()
    frame = {c: int(rng.integers(0, 2000)) for c in range(1, market1501.NUM_CAMERAS + 1)}

    def name(pid: int, cam: int) -> str:
        while True:
            frame[cam] += int(rng.integers(1, 60))
            seq = 1 + min(5, frame[cam] // 30000)
            label = f"{pid:04d}" if pid >= 0 else "-1"
            candidate = f"{label}_c{cam}s{seq}_{frame[cam] % 1000000:06d}_{int(rng.integers(1, 9)):02d}.jpg"
            if candidate not in used:
                used.add(candidate)
                return candidate

    def crop(pid: int, cam: int) -> bytes:
        # Distractors and junk are other people: ids far above the labelled ones.
        identity = world.identity(pid if pid > 0 else 10_000_000 + int(rng.integers(1 << 20)))
        image = world.render_person(identity, cam, size=CROP_SIZE, rng=rng).image
        if pid == -1:  # junk is a bad detection: a piece of a person blown up to the crop size
            h, w = CROP_SIZE
            y0 = int(rng.integers(0, h // 2))
            piece = Image.fromarray(image[y0 : y0 + h // 2, :]).resize((w, h), Image.BILINEAR)
            image = np.asarray(piece)
        return jpeg_bytes(image)

    with atomic_path(out) as tmp:
        dirs = {split: tmp / sub for split, sub in market1501.SPLIT_DIRS.items()}
        for d in dirs.values():
            d.mkdir(parents=True)
        for pid in train_ids:
            for cam, n in _camera_counts(rng, per_id).items():
                for _ in range(n):
                    (dirs["train"] / name(pid, cam)).write_bytes(crop(pid, cam))
        for pid in test_ids:
            for cam, n in _camera_counts(rng, per_id).items():
                n_query = 0 if n < 2 else (1 if n < 4 else 2)
                for j in range(n):
                    split = "query" if j < n_query else "gallery"
                    (dirs[split] / name(pid, cam)).write_bytes(crop(pid, cam))
        n_test = len(test_ids)
        for pid, count in ((0, max(1, n_test // 2)), (-1, max(1, n_test // 4))):
            for _ in range(count):
                cam = 1 + int(rng.integers(market1501.NUM_CAMERAS))
                (dirs["gallery"] / name(pid, cam)).write_bytes(crop(pid, cam))
    log.debug("wrote synthetic Market-1501 (%d train ids, %d test ids) to %s", len(train_ids), n_test, out)


def _msmt_name(pid: int, index: int, camid: int, frame: int) -> str:
    return f"{pid:04d}/{pid:04d}_{index:03d}_{camid:02d}_0303morning_{frame:04d}_0.jpg"


def write_msmt17(out: Path, options: SynthOptions) -> None:
    """Write a synthetic MSMT17_V1 folder at ``out``: ``images`` crops of ``ids`` identities.

    Half the identities (rounded up) are training identities (about 1 in 10 of their images go to
    ``list_val.txt``), the rest test identities; each test identity's first quarter of images (at least one)
    are queries, the rest gallery. An identity's images cycle through cameras, so every query has a gallery
    match under another camera.
    """
    from saip_bench.synth import SynthWorld

    ids, images, seed = options.ids, options.images, options.seed
    if ids < 2 or images < 2 * ids:
        raise ConfigError(
            f"msmt17 synth needs ids >= 2 and images >= 2 x ids (got ids={ids}, images={images})"
        )
    n_train = (ids + 1) // 2
    per_id = [images // ids + (1 if i < images % ids else 0) for i in range(ids)]
    world = SynthWorld(seed)
    rng = np.random.default_rng(seed + 17)
    lines: dict[str, list[str]] = {split: [] for split in msmt17.LISTS}
    with atomic_path(out) as tmp:
        for gid in range(ids):
            is_train = gid < n_train
            pid = gid if is_train else gid - n_train
            identity = world.identity(gid)
            cam0 = int(rng.integers(0, msmt17.NUM_CAMERAS))
            n_query = max(1, per_id[gid] // 4)
            for j in range(per_id[gid]):
                camid = (cam0 + j) % msmt17.NUM_CAMERAS + 1
                rel = _msmt_name(pid, j, camid, int(rng.integers(0, 10000)))
                path = tmp / ("train" if is_train else "test") / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                sample = world.render_person(identity, camid, size=CROP_SIZE, rng=rng)
                Image.fromarray(sample.image).save(path, quality=92)
                split = (
                    ("val" if j % 10 == 9 else "train")
                    if is_train
                    else ("query" if j < n_query else "gallery")
                )
                lines[split].append(f"{rel} {pid}")
        for split, (_, list_name) in msmt17.LISTS.items():
            (tmp / list_name).write_text("".join(f"{line}\n" for line in lines[split]), encoding="utf-8")
