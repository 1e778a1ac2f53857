"""CIHP (Crowd Instance-level Human Parsing): on-disk layout, loader, format check, synthetic writer.

Layout (``instance-level_human_parsing/``)::

    Training/Images/<id>.jpg   Training/Category_ids/<id>.png   Training/train_id.txt
    Validation/Images/<id>.jpg Validation/Category_ids/<id>.png Validation/val_id.txt

The release also ships ``Categories/`` (colour pngs), ``Human_ids/`` and ``Instance_ids/`` (instance
labels), and ``Human/``/``Instances/`` colour renderings; semantic parsing needs only ``Category_ids`` (8-bit
class ids 0..19, 255 ignore), so the loader and the check read nothing else. The synthetic writer also writes
``Human_ids/`` (0 background, k for the k-th person), which is cheap.

Classes are LIP's except id 10, which is **torso-skin** (LIP: jumpsuits). The synthetic renderer labels parts
with LIP ids, so the writer maps them:

- jumpsuits (LIP 10) -> upper-clothes (5): CIHP has no jumpsuit class and annotates a jumpsuit's top as
  upper clothes (the renderer draws no jumpsuits today; the rule only keeps id 10 free for torso-skin);
- torso-skin (10) is derived per person from the face mask (LIP 13), which the renderer also paints over
  the neck: the neck is the bottom run of the person's face rows that are no wider than 1.25x its lowest
  row (the neck is drawn as a band of constant width, the head as an ellipse); those pixels become 10.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from saip_bench.errors import SaipError
from saip_bench.io import atomic_path
from saip_bench.synth.types import CIHP_CLASSES
from saip_bench.tasks.parsing.data import (
    ParsingSet,
    check_set,
    encode_jpeg,
    encode_png,
    resolve_split,
    split_counts,
)

log = logging.getLogger(__name__)

FOLDER = "instance-level_human_parsing"
SPLIT_DIRS = {"train": ("Training", "train_id.txt"), "val": ("Validation", "val_id.txt")}
LIP_JUMPSUITS, UPPER_CLOTHES, FACE, TORSO_SKIN = 10, 5, 13, 10
NECK_WIDTH_RATIO = 1.25


def resolve_root(root: str | Path) -> Path:
    """The folder holding ``Training/`` and ``Validation/``: ``root`` itself or ``root/<FOLDER>``."""
    root = Path(root)
    if not (root / "Training").is_dir() and (root / FOLDER).is_dir():
        return root / FOLDER
    return root


def load(root: str | Path) -> ParsingSet:
    """Both splits of CIHP (``Images`` + ``Category_ids``), in id-list order.

    Raises:
        DataFormatError: a missing id list, or an id naming a missing image/label (names the list and line).
    """
    root = resolve_root(root)
    splits = {}
    for split, (folder, id_file) in SPLIT_DIRS.items():
        base = root / folder
        splits[split] = resolve_split(base / id_file, base / "Images", base / "Category_ids")
    return ParsingSet("cihp", CIHP_CLASSES, splits["train"], splits["val"])


def check(root: str | Path) -> dict[str, int]:
    """Validate a CIHP folder: id lists, files they name, ``Category_ids`` pngs (mode, ids, size).

    Returns:
        ``{"train", "val", "classes"}`` counts.

    Raises:
        DataFormatError: naming the first bad file (or id-list line).
    """
    return check_set(load(root))


def lip_to_cihp(part_mask: np.ndarray, instance_ids: np.ndarray) -> np.ndarray:
    """Map a LIP-id part mask to CIHP ids (see module docstring): jumpsuits -> upper, necks -> torso-skin.

    Args:
        part_mask: ``(H, W)`` uint8 LIP ids.
        instance_ids: ``(H, W)`` person index per pixel (0 background).
    """
    out = part_mask.copy()
    out[part_mask == LIP_JUMPSUITS] = UPPER_CLOTHES
    face = part_mask == FACE
    for inst in np.unique(instance_ids[face]):
        mask = face & (instance_ids == inst)
        widths = mask.sum(axis=1)
        rows = np.flatnonzero(widths)
        bottom = widths[rows[-1]]
        neck_top = rows[-1]
        while neck_top - 1 >= rows[0] and 0 < widths[neck_top - 1] <= NECK_WIDTH_RATIO * bottom:
            neck_top -= 1
        if neck_top == rows[0]:  # the whole face region is one band (e.g. a tiny far person): no neck
            continue
        band = np.zeros_like(mask)
        band[neck_top : rows[-1] + 1] = True
        out[mask & band] = TORSO_SKIN
    return out


def write_synth(out: str | Path, *, ids: int, images: int, seed: int) -> None:
    """Write a synthetic CIHP into ``out``: multi-person scenes from :meth:`SynthWorld.render_scene`.

    A quarter of ``images`` (at least one) goes to ``Validation``, the rest to ``Training``; each scene holds
    1-4 people (``ids`` is unused: scenes draw their own people) at 256-320 x 320-400 pixels. Labels are the
    renderer's LIP part mask mapped by :func:`lip_to_cihp`; ``Human_ids`` holds the person index per pixel.
    Image ids are zero-padded numbers, like the release's ``0000006``.

    Args:
        out: Target folder; it may exist only if empty. Written atomically (all or nothing).
        ids: Unused (kept for the common writer signature).
        images: Total images over train + val.
        seed: Same seed, same files.
    """
    from saip_bench.synth import SynthWorld

    del ids
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise SaipError(f"{out}: folder is not empty; refusing to write cihp over it")
    rng = np.random.default_rng([seed % 2**63, 2018])
    world = SynthWorld(seed)
    n_train, n_val = split_counts(images)
    with atomic_path(out) as tmp:
        k = 0
        for split, count in (("train", n_train), ("val", n_val)):
            folder, id_file = SPLIT_DIRS[split]
            dirs = {sub: tmp / folder / sub for sub in ("Images", "Category_ids", "Human_ids")}
            for d in dirs.values():
                d.mkdir(parents=True)
            names = []
            for _ in range(count):
                size = (int(rng.integers(256, 321)), int(rng.integers(320, 401)))
                scene = world.render_scene(int(rng.integers(1, 5)), size=size, rng=rng)
                name = f"{k:07d}"
                humans = np.clip(scene.instance_ids, 0, 254).astype(np.uint8)
                (dirs["Images"] / f"{name}.jpg").write_bytes(encode_jpeg(scene.image))
                (dirs["Category_ids"] / f"{name}.png").write_bytes(
                    encode_png(lip_to_cihp(scene.part_mask, scene.instance_ids))
                )
                (dirs["Human_ids"] / f"{name}.png").write_bytes(encode_png(humans))
                names.append(name)
                k += 1
            (tmp / folder / id_file).write_text("".join(f"{n}\n" for n in names), encoding="utf-8")
    log.debug("wrote synthetic CIHP (%d train, %d val) to %s", n_train, n_val, out)
