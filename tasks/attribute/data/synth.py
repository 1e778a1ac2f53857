"""Synthetic PA-100K and PETA-zs in their real formats, from :func:`.render.render_persons` crops.

Writers only: the readers (:mod:`.pa100k`, :mod:`.peta_zs`) import nothing from here. Each image's labels
are the generator's attributes of the person drawn, so labels and pixels agree.
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from saip_bench.dataset_spec import SynthOptions
from saip_bench.errors import ConfigError
from saip_bench.io import atomic_path
from saip_bench.tasks.attribute.data import pa100k, peta_zs


def split_sizes(total: int, fractions: tuple[float, ...]) -> list[int]:
    """Split ``total`` items into parts proportional to ``fractions``, none empty (needs total >= parts)."""
    if total < len(fractions):
        raise ValueError(f"need at least {len(fractions)} items to make {len(fractions)} non-empty parts")
    sizes = [max(1, int(round(total * f))) for f in fractions[:-1]]
    while sum(sizes) > total - 1:  # leave at least one for the last part
        sizes[int(np.argmax(sizes))] -= 1
    return sizes + [total - sum(sizes)]


def _render(image_dir: Path, names: Sequence[str], pids: np.ndarray, seed: int, attributes: Sequence[str]):
    """Render one crop per pid into ``image_dir/names[i]``; return the ``(N, A)`` uint8 labels."""
    # Looked up on the module at call time, so tests can swap in a stand-in renderer.
    from saip_bench.tasks.attribute.data import render

    labels = np.zeros((len(names), len(attributes)), dtype=np.uint8)
    for i, sample in enumerate(render.render_persons(pids, seed=seed)):
        Image.fromarray(sample.image).save(image_dir / names[i], quality=92)
        labels[i] = [bool(sample.attributes[a]) for a in attributes]
    return labels


def _cell(strings: list[str]) -> np.ndarray:
    """An ``(N, 1)`` object array: savemat writes it as a cell array of strings, as in the real file."""
    cell = np.empty((len(strings), 1), dtype=object)
    for i, text in enumerate(strings):
        cell[i, 0] = text
    return cell


def write_pa100k(out: Path, options: SynthOptions) -> None:
    """Write a synthetic PA-100K in the real format: ``out/data/NNNNNN.jpg`` and ``out/annotation.mat``.

    ``images`` person crops of ``ids`` identities (any camera) are split 80/10/10 into train/val/test, like
    the real set (which has no identity-disjoint split). Labels are the generator's PA-100K attributes.
    """
    from scipy.io import savemat

    ids, images, seed = options.ids, options.images, options.seed
    if ids < 1 or images < 3:
        raise ConfigError(f"pa100k synth needs ids >= 1 and images >= 3 (got ids={ids}, images={images})")
    rng = np.random.default_rng(seed)
    pids = rng.integers(0, ids, size=images)
    sizes = split_sizes(images, (0.8, 0.1, 0.1))
    with atomic_path(out) as tmp:
        (tmp / pa100k.IMAGE_DIR).mkdir(parents=True)
        names = [f"{i + 1:06d}.jpg" for i in range(images)]
        labels = _render(tmp / pa100k.IMAGE_DIR, names, pids, seed, pa100k.ATTRIBUTES)
        mat: dict[str, np.ndarray] = {"attributes": _cell(list(pa100k.ATTRIBUTES))}
        start = 0
        for split, size in zip(pa100k.SPLITS, sizes, strict=True):
            mat[f"{split}_images_name"] = _cell(names[start : start + size])
            mat[f"{split}_label"] = labels[start : start + size]
            start += size
        savemat(str(tmp / pa100k.ANNOTATION), mat, do_compression=True)


def write_peta_zs(out: Path, options: SynthOptions) -> None:
    """Write a synthetic PETA-zs: ``out/images/NNNNN.png`` and ``out/dataset_zs_run0.pkl``.

    Identities are split about 60/20/20 into train / val / test (disjoint, as in the zero-shot protocol);
    ``images`` crops are spread over the identities round-robin, so every identity has at least one (with
    fewer images than identities, only ``images`` identities are used). Labels are the generator's PETA
    attributes.
    """
    images, seed = options.images, options.seed
    ids = min(options.ids, images)
    if ids < 3:
        raise ConfigError(
            f"peta_zs synth needs at least 3 identities and 3 images (got ids={ids}, images={images})"
        )
    rng = np.random.default_rng(seed)
    order = rng.permutation(ids)
    id_split = np.empty(ids, dtype=np.int64)  # 0 train, 1 val, 2 test
    start = 0
    for part, size in enumerate(split_sizes(ids, (0.6, 0.2, 0.2))):
        id_split[order[start : start + size]] = part
        start += size
    pids = np.arange(images) % ids
    pids = pids[rng.permutation(images)]  # interleave so file order says nothing about the split
    names = [f"{i + 1:05d}.png" for i in range(images)]
    with atomic_path(out) as tmp:
        (tmp / peta_zs.IMAGE_DIR).mkdir(parents=True)
        labels = _render(tmp / peta_zs.IMAGE_DIR, names, pids, seed, peta_zs.ATTRIBUTES)
        train, val, test = (np.flatnonzero(id_split[pids] == part).astype(np.int64) for part in range(3))
        trainval = np.concatenate([train, val])
        data = {
            "description": "peta",
            "root": peta_zs.IMAGE_DIR,
            "image_name": names,
            "label": labels,
            "attr_name": list(peta_zs.ATTRIBUTES),
            "partition": {"train": train, "val": val, "trainval": trainval, "test": test},
            "weight_trainval": (labels[trainval] == 1).mean(axis=0).astype(np.float32),
        }
        with open(tmp / peta_zs.SPLIT_FILE, "wb") as handle:
            pickle.dump(data, handle, protocol=4)
