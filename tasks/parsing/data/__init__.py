"""Human-parsing dataset formats (LIP, CIHP) and what they share: id lists, label pngs and their checks.

Both formats list a split's images in an id file (one image id per line, no extension) and store each
image's labels as a single-channel png (mode ``L`` or ``P``) of the image's size, holding class ids
``0..19`` and ``255`` for "ignore". :func:`read_id_list` and :func:`check_label` give one clear error per
problem; :func:`check_split` runs them over a split, decoding every png up to :data:`FULL_CHECK_LIMIT` files
and an even sample beyond (``saip data check``). The synthetic writers are in :mod:`.synth`; read a dataset
through the registry: ``DATASETS.get("lip").load(root) -> ParsingSet``.

Before a run: the loaders check every file the run will read, so a bad png stops it before the first step
rather than at evaluation. :func:`check_headers` reads only the png and jpg headers of every pair (mode and
size; about 55 us a pair on one core, 2 s for LIP's 40k pairs) and :func:`check_label_ids` decodes every
label for its ids (about 0.6 ms a 480x360 label on one core; LIP's 40k labels take about 25 s of CPU,
spread over threads), which is small beside a fine-tune and saves one from stopping mid-epoch (or, in a
loader worker, with a traceback) or at evaluation on a shape error from the metric.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from saip_bench.errors import DataFormatError

NUM_CLASSES = 20
IGNORE_INDEX = 255
FULL_CHECK_LIMIT = 2000  # decode every png up to this many per split, an even sample beyond
#: Left/right class pairs, swapped when an image is mirrored (the same ids in LIP and CIHP).
FLIP_PAIRS: tuple[tuple[int, int], ...] = ((14, 15), (16, 17), (18, 19))


def flip_permutation(num_classes: int = NUM_CLASSES) -> list[int]:
    """Class id -> its mirror's id (left-arm <-> right-arm, ...); the identity for the other classes."""
    perm = list(range(num_classes))
    for a, b in FLIP_PAIRS:
        perm[a], perm[b] = b, a
    return perm


@dataclass(frozen=True)
class ParsingSplit:
    """One split of a parsing dataset: parallel lists of image and label paths, in id-list order."""

    ids: list[str]
    images: list[Path]
    labels: list[Path]

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class ParsingSet:
    """A parsing dataset: its ``train`` and ``val`` splits and its class names (id order)."""

    name: str
    classes: tuple[str, ...]
    train: ParsingSplit
    val: ParsingSplit


def read_id_list(path: Path) -> list[str]:
    """Image ids of an id file, blank lines skipped; a missing file or a duplicate id is an error."""
    if not path.is_file():
        raise DataFormatError(path, "missing id list")
    ids: list[str] = []
    seen: dict[str, int] = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        name = line.strip()
        if not name:
            continue
        if name in seen:
            raise DataFormatError(path, f"line {lineno}: id {name!r} repeats line {seen[name]}")
        seen[name] = lineno
        ids.append(name)
    return ids


def resolve_split(
    id_file: Path, image_dir: Path, label_dir: Path, *, image_ext: str = ".jpg", require: bool = True
) -> ParsingSplit:
    """Pair every id of ``id_file`` with its image and label; a missing file names the list and line.

    Args:
        id_file: the split's id list.
        image_dir: folder of ``<id><image_ext>`` images.
        label_dir: folder of ``<id>.png`` labels.
        image_ext: image extension.
        require: an empty list is an error.
    """
    ids = read_id_list(id_file)
    if require and not ids:
        raise DataFormatError(id_file, "the id list is empty")
    lines = {}
    for lineno, line in enumerate(id_file.read_text(encoding="utf-8").splitlines(), start=1):
        lines.setdefault(line.strip(), lineno)
    images, labels = [], []
    for name in ids:
        image, label = image_dir / f"{name}{image_ext}", label_dir / f"{name}.png"
        for path, kind in ((image, "image"), (label, "label")):
            if not path.is_file():
                raise DataFormatError(id_file, f"line {lines[name]}: {kind} {path} of id {name!r} is missing")
        images.append(image)
        labels.append(label)
    return ParsingSplit(ids, images, labels)


def _check_mode(path: Path, img: Image.Image) -> None:
    if img.mode not in ("L", "P"):
        raise DataFormatError(path, f"label png must be single-channel (mode L or P), not {img.mode}")


def read_label(path: Path, *, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """A label png as ``(H, W)`` uint8 ids, each in ``0..num_classes-1`` or 255 (ignore).

    Raises:
        DataFormatError: a missing, unreadable or multi-channel png, or an id out of range (names the png).
    """
    try:
        with Image.open(path) as img:
            _check_mode(path, img)
            ids = np.array(img, dtype=np.uint8)
    except DataFormatError:
        raise
    except FileNotFoundError:
        raise DataFormatError(path, "label png is missing") from None
    except Exception as err:  # truncated or corrupt: PIL raises many types
        raise DataFormatError(path, f"corrupt png ({type(err).__name__}: {err})") from None
    valid = np.zeros(256, dtype=bool)
    valid[:num_classes] = True
    valid[IGNORE_INDEX] = True
    bad = ~valid[ids]
    if bad.any():
        raise DataFormatError(
            path, f"label id {int(ids[bad].min())} is outside 0..{num_classes - 1} and 255 (ignore)"
        )
    return ids


def _header_size(path: Path, kind: str, label: bool = False) -> tuple[int, int]:
    """``(width, height)`` from the header only (PIL decodes no pixels until asked)."""
    try:
        with Image.open(path) as img:
            if label:
                _check_mode(path, img)
            return img.size
    except DataFormatError:
        raise
    except FileNotFoundError:
        raise DataFormatError(path, f"{kind} is missing") from None
    except Exception as err:  # not an image at all: PIL raises many types
        raise DataFormatError(path, f"not a readable {kind} ({type(err).__name__}: {err})") from None


def check_headers(split: ParsingSplit) -> None:
    """Every pair's label png is single-channel and of its image's size, from the headers alone."""
    for image, label in zip(split.images, split.labels, strict=True):
        label_size = _header_size(label, "label png", label=True)
        image_size = _header_size(image, "image")
        if label_size != image_size:
            raise DataFormatError(
                label, f"label is {label_size[0]}x{label_size[1]} but its image is "
                f"{image_size[0]}x{image_size[1]} ({image.name})",
            )  # fmt: skip


def check_label_ids(split: ParsingSplit, *, num_classes: int = NUM_CLASSES) -> None:
    """Decode every label png of ``split`` and check its ids (:func:`read_label`); the first bad png in
    id-list order is the one reported. PIL decodes outside the GIL, so a few threads share the work."""
    workers = min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for _ in pool.map(lambda label: read_label(label, num_classes=num_classes), split.labels):
            pass


def check_for_run(data: ParsingSet) -> ParsingSet:
    """What a run checks before its first step: every pair's headers, then every label's ids."""
    for split in (data.train, data.val):
        check_headers(split)
    for split in (data.train, data.val):
        check_label_ids(split, num_classes=len(data.classes))
    return data


def check_label(label_path: Path, image_path: Path, *, num_classes: int = NUM_CLASSES) -> None:
    """Decode one label png and check its mode, ids (``0..num_classes-1`` or 255) and size vs its image."""
    ids = read_label(label_path, num_classes=num_classes)
    try:
        with Image.open(image_path) as img:
            img.load()
            size = img.size
    except Exception as err:  # truncated or corrupt: PIL raises many types
        raise DataFormatError(image_path, f"cannot decode image ({type(err).__name__}: {err})") from None
    if (ids.shape[1], ids.shape[0]) != size:
        raise DataFormatError(
            label_path, f"label is {ids.shape[1]}x{ids.shape[0]} but its image is {size[0]}x{size[1]}"
        )


def check_split(split: ParsingSplit, *, limit: int = FULL_CHECK_LIMIT) -> None:
    """:func:`check_label` on every pair up to ``limit`` pairs, on an even sample of ``limit`` beyond."""
    step = max(1, len(split) // max(1, limit))
    for image, label in list(zip(split.images, split.labels, strict=True))[::step]:
        check_label(label, image)


def check_set(data: ParsingSet) -> dict[str, int]:
    """Validate both splits of a loaded dataset (see :func:`check_split`) and return its counts.

    Returns:
        ``{"train", "val", "classes"}`` counts.
    """
    for split in (data.train, data.val):
        check_split(split)
    return {"train": len(data.train), "val": len(data.val), "classes": len(data.classes)}


__all__ = [
    "FLIP_PAIRS",
    "IGNORE_INDEX",
    "NUM_CLASSES",
    "ParsingSet",
    "ParsingSplit",
    "check_for_run",
    "check_headers",
    "check_label",
    "check_label_ids",
    "check_split",
    "read_id_list",
    "read_label",
    "resolve_split",
]
