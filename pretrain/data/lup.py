"""The ``lup`` format: a folder of unlabeled person crops, LUPerson style (LUP1M for pretraining).

Layout: one folder of ``.jpg`` crops named ``<video>_<frame>_<idx>.jpg`` (a YouTube-like video id, the frame
number, the person's index in that frame), about 256x128 with varying sizes; sub-folders are allowed when
reading (users often shard the million crops).
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

import numpy as np
from PIL import Image

from saip_bench.errors import DataFormatError, SaipError
from saip_bench.io import atomic_path

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
FULL_CHECK_LIMIT = 2000  # decode every image up to this many, an even sample beyond
# Detector crops come in a few sizes around 256x128 (height 224-320, aspect 0.42-0.55); a small set keeps
# the generator's per-size background cache warm.
CROP_SIZES = ((224, 112), (240, 104), (256, 128), (256, 112), (288, 128), (288, 144), (320, 144), (320, 176))
_ID_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def list_images(root: str | Path) -> list[Path]:
    """Every jpg/png under ``root`` (recursive), sorted by path."""
    root = Path(root)
    if not root.is_dir():
        raise DataFormatError(root, "no such folder")
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def check(root: str | Path) -> dict[str, int]:
    """Validate a LUP folder: at least one image, and every image readable.

    Returns:
        ``{"images": n}``.

    Raises:
        DataFormatError: naming the folder when it holds no image, or the first unreadable image.
    """
    paths = list_images(root)
    if not paths:
        raise DataFormatError(root, "no .jpg/.png images found (expected LUPerson-style person crops)")
    # Decoding a million crops takes minutes: decode all of a small folder, an even sample of a large one.
    step = max(1, len(paths) // FULL_CHECK_LIMIT)
    for path in paths[::step]:
        try:
            with Image.open(path) as img:
                img.load()
        except Exception as err:  # PIL raises many types for a corrupt file
            raise DataFormatError(path, f"unreadable image ({type(err).__name__}: {err})") from None
    return {"images": len(paths)}


def _encode_jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def write_synth(out: str | Path, *, ids: int, images: int, seed: int) -> None:
    """Write ``images`` synthetic person crops of ``ids`` people into the folder ``out``.

    Each "video" is one person walking past one camera: its crops share the video id and differ in frame,
    pose and framing. Sizes vary around 256x128 (``CROP_SIZES``: height 224-320, aspect 0.42-0.55), as
    detector crops do.

    Args:
        out: Target folder; it may exist only if empty. Written atomically (all or nothing).
        ids: Number of different people.
        images: Number of crops.
        seed: Same seed, same files.
    """
    from saip_bench.synth import SynthWorld

    out = Path(out)
    if ids < 1 or images < 1:
        raise SaipError(f"lup: ids and images must be at least 1 (got ids={ids}, images={images})")
    if out.exists() and any(out.iterdir()):
        raise SaipError(f"{out}: folder is not empty; refusing to write the lup dataset over it")
    world = SynthWorld(seed)
    rng = np.random.default_rng([seed % 2**63, 101])
    videos: list[str] = []
    while len(videos) < ids:
        video = "".join(_ID_CHARS[int(c)] for c in rng.integers(0, len(_ID_CHARS), size=11))
        if video not in videos:
            videos.append(video)
    frames = [int(f) for f in rng.integers(0, 5000, size=ids)]
    with atomic_path(out) as tmp:
        tmp.mkdir(parents=True)
        for i in range(images):
            person = i % ids
            h, w = CROP_SIZES[int(rng.integers(len(CROP_SIZES)))]
            camid = 1 + int(rng.integers(0, 6))
            sample = world.render_person(world.identity(person), camid, size=(h, w), rng=rng)
            frames[person] += int(rng.integers(1, 25))
            name = f"{videos[person]}_{frames[person]:06d}_{int(rng.integers(0, 4))}.jpg"
            (tmp / name).write_bytes(_encode_jpeg(sample.image))
    log.debug("wrote %d lup crops of %d people to %s", images, ids, out)
