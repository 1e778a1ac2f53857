"""LIP (Look Into Person): its real on-disk layout, a loader, a format check, and a synthetic writer.

Layout (``LIP/``)::

    train_images/<id>.jpg        val_images/<id>.jpg
    train_segmentations/<id>.png val_segmentations/<id>.png   # 8-bit label ids 0..19, 255 = ignore
    train_id.txt                 val_id.txt                   # one image id per line, no extension

Classes (id order): background, hat, hair, glove, sunglasses, upper-clothes, dress, coat, socks, pants,
jumpsuits, scarf, skirt, face, left-arm, right-arm, left-leg, right-leg, left-shoe, right-shoe. The images
are single-person crops of varied sizes; every label png has its image's size.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from saip_bench.errors import SaipError
from saip_bench.io import atomic_path
from saip_bench.synth.types import LIP_CLASSES
from saip_bench.tasks.parsing.data import (
    ParsingSet,
    check_set,
    encode_jpeg,
    encode_png,
    resolve_split,
    split_counts,
)

log = logging.getLogger(__name__)

FOLDER = "LIP"
SPLITS = ("train", "val")


def resolve_root(root: str | Path) -> Path:
    """The folder holding the id lists: ``root`` itself or ``root/LIP``."""
    root = Path(root)
    if not (root / "train_id.txt").is_file() and (root / FOLDER).is_dir():
        return root / FOLDER
    return root


def load(root: str | Path) -> ParsingSet:
    """Both splits of LIP, every id resolved to its jpg and png.

    Raises:
        DataFormatError: a missing id list, or an id naming a missing image/label (names the list and line).
    """
    root = resolve_root(root)
    splits = {
        split: resolve_split(
            root / f"{split}_id.txt", root / f"{split}_images", root / f"{split}_segmentations"
        )
        for split in SPLITS
    }
    return ParsingSet("lip", LIP_CLASSES, splits["train"], splits["val"])


def check(root: str | Path) -> dict[str, int]:
    """Validate a LIP folder: id lists, files they name, label pngs (mode, ids, size vs image).

    Returns:
        ``{"train", "val", "classes"}`` counts.

    Raises:
        DataFormatError: naming the first bad file (or id-list line).
    """
    return check_set(load(root))


def write_synth(out: str | Path, *, ids: int, images: int, seed: int) -> None:
    """Write a synthetic LIP into ``out``: single-person crops from :meth:`SynthWorld.render_person`.

    A quarter of ``images`` (at least one) goes to ``val``, the rest to ``train``; ``ids`` identities are
    drawn in turn. Crops vary in size around LIP's typical person crop (height 160-224, aspect 0.45-0.75);
    the renderer's part mask already holds LIP ids. Image ids follow LIP's ``<number>_<number>`` style.

    Args:
        out: Target folder; it may exist only if empty. Written atomically (all or nothing).
        ids: Number of identities.
        images: Total images over train + val.
        seed: Same seed, same files.
    """
    from saip_bench.synth import SynthWorld

    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise SaipError(f"{out}: folder is not empty; refusing to write lip over it")
    rng = np.random.default_rng([seed % 2**63, 4747])
    world = SynthWorld(seed)
    n_train, n_val = split_counts(images)
    with atomic_path(out) as tmp:
        k = 0
        for split, count in (("train", n_train), ("val", n_val)):
            (tmp / f"{split}_images").mkdir(parents=True)
            (tmp / f"{split}_segmentations").mkdir(parents=True)
            names = []
            for _ in range(count):
                h = int(rng.integers(160, 225))
                w = int(round(h * float(rng.uniform(0.45, 0.75))))
                sample = world.render_person(
                    world.identity(1 + k % max(1, ids)), int(rng.integers(1, 7)), size=(h, w), rng=rng
                )
                name = f"{100000 + k * 7:d}_{int(rng.integers(1000, 9999))}"
                (tmp / f"{split}_images" / f"{name}.jpg").write_bytes(encode_jpeg(sample.image))
                (tmp / f"{split}_segmentations" / f"{name}.png").write_bytes(encode_png(sample.part_mask))
                names.append(name)
                k += 1
            (tmp / f"{split}_id.txt").write_text("".join(f"{n}\n" for n in names), encoding="utf-8")
    log.debug("wrote synthetic LIP (%d train, %d val) to %s", n_train, n_val, out)
