"""CIHP (Crowd Instance-level Human Parsing): on-disk layout, loader and format check (writer: :mod:`.synth`).

Layout (``instance-level_human_parsing/``)::

    Training/Images/<id>.jpg   Training/Category_ids/<id>.png   Training/train_id.txt
    Validation/Images/<id>.jpg Validation/Category_ids/<id>.png Validation/val_id.txt

The release also ships ``Categories/`` (colour pngs), ``Human_ids/`` and ``Instance_ids/`` (instance
labels), and ``Human/``/``Instances/`` colour renderings; semantic parsing needs only ``Category_ids`` (8-bit
class ids 0..19, 255 ignore), so the loader and the check read nothing else. The synthetic writer also writes
``Human_ids/`` (0 background, k for the k-th person), which is cheap.

Classes are LIP's except id 10, which is **torso-skin** (LIP: jumpsuits). The synthetic renderer labels parts
with LIP ids, so the writer maps them (:func:`saip_bench.tasks.parsing.data.synth.lip_to_cihp`):

- jumpsuits (LIP 10) -> upper-clothes (5): CIHP has no jumpsuit class and annotates a jumpsuit's top as
  upper clothes (the renderer draws no jumpsuits today; the rule only keeps id 10 free for torso-skin);
- torso-skin (10) is derived per person from the face mask (LIP 13), which the renderer also paints over
  the neck: the neck is the bottom run of the person's face rows that are no wider than 1.25x its lowest
  row (the neck is drawn as a band of constant width, the head as an ellipse); those pixels become 10.
"""

from __future__ import annotations

from pathlib import Path

from saip_bench.dataset_spec import dataset_folder
from saip_bench.synth.types import CIHP_CLASSES
from saip_bench.tasks.parsing.data import ParsingSet, check_for_run, check_set, resolve_split

FOLDER = "instance-level_human_parsing"
SPLIT_DIRS = {"train": ("Training", "train_id.txt"), "val": ("Validation", "val_id.txt")}


def load(root: str | Path) -> ParsingSet:
    """Both splits of CIHP (``Images`` + ``Category_ids``, in ``root`` or ``root/<FOLDER>``), id-list order.

    Raises:
        DataFormatError: a missing id list, or an id naming a missing image/label (names the list and line);
            a label png that is not single-channel or not its image's size, or a validation label with an
            id out of range (names the png; see :func:`check_for_run`).
    """
    root = dataset_folder(root, FOLDER, "Training")
    splits = {}
    for split, (folder, id_file) in SPLIT_DIRS.items():
        base = root / folder
        splits[split] = resolve_split(base / id_file, base / "Images", base / "Category_ids")
    return check_for_run(ParsingSet("cihp", CIHP_CLASSES, splits["train"], splits["val"]))


def check(root: str | Path) -> dict[str, int]:
    """Validate a CIHP folder (:func:`check_set`): ``{"train", "val", "classes"}`` counts."""
    return check_set(load(root))
