"""LIP (Look Into Person): its real on-disk layout, a loader and a format check (writer: :mod:`.synth`).

Layout (``LIP/``)::

    train_images/<id>.jpg        val_images/<id>.jpg
    train_segmentations/<id>.png val_segmentations/<id>.png   # 8-bit label ids 0..19, 255 = ignore
    train_id.txt                 val_id.txt                   # one image id per line, no extension

Classes (id order): background, hat, hair, glove, sunglasses, upper-clothes, dress, coat, socks, pants,
jumpsuits, scarf, skirt, face, left-arm, right-arm, left-leg, right-leg, left-shoe, right-shoe. The images
are single-person crops of varied sizes; every label png has its image's size.
"""

from __future__ import annotations

from pathlib import Path

from saip_bench.dataset_spec import dataset_folder
from saip_bench.synth.types import LIP_CLASSES
from saip_bench.tasks.parsing.data import ParsingSet, check_for_run, check_set, resolve_split

FOLDER = "LIP"
SPLITS = ("train", "val")


def load(root: str | Path) -> ParsingSet:
    """Both splits of LIP (``root`` or ``root/LIP``), every id resolved to its jpg and png.

    Raises:
        DataFormatError: a missing id list, or an id naming a missing image/label (names the list and line);
            a label png that is not single-channel or not its image's size, or a validation label with an
            id out of range (names the png; see :func:`check_for_run`).
    """
    root = dataset_folder(root, FOLDER, "train_id.txt")
    splits = {
        split: resolve_split(
            root / f"{split}_id.txt", root / f"{split}_images", root / f"{split}_segmentations"
        )
        for split in SPLITS
    }
    return check_for_run(ParsingSet("lip", LIP_CLASSES, splits["train"], splits["val"]))


def check(root: str | Path) -> dict[str, int]:
    """Validate a LIP folder (:func:`check_set`): ``{"train", "val", "classes"}`` counts."""
    return check_set(load(root))
