"""Synthetic LIP (single-person crops) and CIHP (multi-person scenes) in their real layouts.

Writers only: the readers (:mod:`.lip`, :mod:`.cihp`) import nothing from here. Labels are the renderer's
LIP part mask (LIP ids); CIHP's are mapped by :func:`lip_to_cihp`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from saip_bench.dataset_spec import SynthOptions
from saip_bench.io import atomic_path
from saip_bench.synth.files import jpeg_bytes, png_bytes, require_empty
from saip_bench.tasks.parsing.data import cihp

log = logging.getLogger(__name__)

LIP_JUMPSUITS, UPPER_CLOTHES, FACE, TORSO_SKIN = 10, 5, 13, 10
NECK_WIDTH_RATIO = 1.25


def split_counts(images: int, val_fraction: float = 0.25) -> tuple[int, int]:
    """(train, val) image counts for ``images`` in total: at least one of each."""
    images = max(2, int(images))
    n_val = min(images - 1, max(1, int(round(images * val_fraction))))
    return images - n_val, n_val


def write_lip(out: Path, options: SynthOptions) -> None:
    """Write a synthetic LIP into ``out``: single-person crops from :meth:`SynthWorld.render_person`.

    A quarter of ``images`` (at least one) goes to ``val``, the rest to ``train``; ``ids`` identities are
    drawn in turn. Crops vary in size around LIP's typical person crop (height 160-224, aspect 0.45-0.75);
    the renderer's part mask already holds LIP ids. Image ids follow LIP's ``<number>_<number>`` style.
    ``out`` may exist only if empty; it is written atomically (all or nothing).
    """
    from saip_bench.synth import SynthWorld

    require_empty(out, "lip")
    rng = np.random.default_rng([options.seed % 2**63, 4747])
    world = SynthWorld(options.seed)
    n_train, n_val = split_counts(options.images)
    with atomic_path(out) as tmp:
        k = 0
        for split, count in (("train", n_train), ("val", n_val)):
            (tmp / f"{split}_images").mkdir(parents=True)
            (tmp / f"{split}_segmentations").mkdir(parents=True)
            names = []
            for _ in range(count):
                h = int(rng.integers(160, 225))
                w = int(round(h * float(rng.uniform(0.45, 0.75))))
                identity = world.identity(1 + k % max(1, options.ids))
                sample = world.render_person(identity, int(rng.integers(1, 7)), size=(h, w), rng=rng)
                name = f"{100000 + k * 7:d}_{int(rng.integers(1000, 9999))}"
                (tmp / f"{split}_images" / f"{name}.jpg").write_bytes(jpeg_bytes(sample.image))
                (tmp / f"{split}_segmentations" / f"{name}.png").write_bytes(png_bytes(sample.part_mask))
                names.append(name)
                k += 1
            (tmp / f"{split}_id.txt").write_text("".join(f"{n}\n" for n in names), encoding="utf-8")
    log.debug("wrote synthetic LIP (%d train, %d val) to %s", n_train, n_val, out)


def lip_to_cihp(part_mask: np.ndarray, instance_ids: np.ndarray) -> np.ndarray:
    """Map a LIP-id part mask to CIHP ids (see :mod:`.cihp`): jumpsuits -> upper, necks -> torso-skin.

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


def write_cihp(out: Path, options: SynthOptions) -> None:
    """Write a synthetic CIHP into ``out``: multi-person scenes from :meth:`SynthWorld.render_scene`.

    A quarter of ``images`` (at least one) goes to ``Validation``, the rest to ``Training``; each scene holds
    1-4 people (``ids`` is unused: scenes draw their own people) at 256-320 x 320-400 pixels. Labels are the
    renderer's LIP part mask mapped by :func:`lip_to_cihp`; ``Human_ids`` holds the person index per pixel.
    Image ids are zero-padded numbers, like the release's ``0000006``. ``out`` may exist only if empty; it
    is written atomically (all or nothing).
    """
    from saip_bench.synth import SynthWorld

    require_empty(out, "cihp")
    rng = np.random.default_rng([options.seed % 2**63, 2018])
    world = SynthWorld(options.seed)
    n_train, n_val = split_counts(options.images)
    with atomic_path(out) as tmp:
        k = 0
        for split, count in (("train", n_train), ("val", n_val)):
            folder, id_file = cihp.SPLIT_DIRS[split]
            dirs = {sub: tmp / folder / sub for sub in ("Images", "Category_ids", "Human_ids")}
            for d in dirs.values():
                d.mkdir(parents=True)
            names = []
            for _ in range(count):
                size = (int(rng.integers(256, 321)), int(rng.integers(320, 401)))
                scene = world.render_scene(int(rng.integers(1, 5)), size=size, rng=rng)
                name = f"{k:07d}"
                humans = np.clip(scene.instance_ids, 0, 254).astype(np.uint8)
                (dirs["Images"] / f"{name}.jpg").write_bytes(jpeg_bytes(scene.image))
                (dirs["Category_ids"] / f"{name}.png").write_bytes(
                    png_bytes(lip_to_cihp(scene.part_mask, scene.instance_ids))
                )
                (dirs["Human_ids"] / f"{name}.png").write_bytes(png_bytes(humans))
                names.append(name)
                k += 1
            (tmp / folder / id_file).write_text("".join(f"{n}\n" for n in names), encoding="utf-8")
    log.debug("wrote synthetic CIHP (%d train, %d val) to %s", n_train, n_val, out)
