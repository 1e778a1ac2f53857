"""The PEDES annotation format shared by CUHK-PEDES and ICFG-PEDES: reading and checking (writer: .synth).

Both datasets are an ``imgs/`` folder plus one JSON file, a list of records::

    {"split": "train", "captions": ["A man wearing ..."], "file_path": "CUHK01/0363004.png",
     "processed_tokens": [["a", "man", "wearing", ...]], "id": 1}

``file_path`` is relative to ``imgs/``. One record is one image; each of its captions is one text query at
test time (IRRA's protocol: every test caption queries the gallery of all test images).
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from saip_bench.data_check import check_image_headers
from saip_bench.errors import DataFormatError, SaipError

log = logging.getLogger(__name__)

REQUIRED_KEYS = ("split", "captions", "file_path", "processed_tokens", "id")
_WORD = re.compile(r"[a-z0-9]+(?:[-'][a-z0-9]+)*")


def caption_tokens(caption: str) -> list[str]:
    """Lower-cased word tokens of a caption, as the releases' ``processed_tokens`` hold them."""
    return _WORD.findall(caption.lower())


@dataclass(frozen=True)
class PedesFormat:
    """What differs between the two datasets: the JSON name, the splits and the first identity id."""

    name: str
    json_name: str
    splits: tuple[str, ...]
    first_id: int
    captions_per_image: int

    def load(self, root: str | Path) -> PedesData:
        """Read a folder of this format (:func:`load_pedes`)."""
        return load_pedes(root, self)

    def check(self, root: str | Path) -> dict[str, int]:
        """Validate a folder of this format (:func:`check_pedes`)."""
        return check_pedes(root, self)


@dataclass
class PedesItem:
    """One image: its path, the dataset's own identity id and its captions."""

    path: Path
    pid: int
    captions: list[str]


@dataclass
class PedesData:
    """A PEDES dataset read into per-split lists of :class:`PedesItem`."""

    root: Path
    splits: dict[str, list[PedesItem]] = field(default_factory=dict)

    def split(self, name: str) -> list[PedesItem]:
        if name not in self.splits:
            raise SaipError(f"{self.root}: no split {name!r}; splits: {', '.join(self.splits)}")
        return self.splits[name]

    def captions(self, name: str) -> tuple[list[str], list[int]]:
        """Every caption of a split with its image's identity id: the text queries."""
        texts, pids = [], []
        for item in self.split(name):
            for caption in item.captions:
                texts.append(caption)
                pids.append(item.pid)
        return texts, pids


def _check_record(record: Any, index: int, json_path: Path, fmt: PedesFormat, imgs: Path) -> PedesItem:
    """One record validated; any problem is a DataFormatError naming the JSON file and the record index."""

    def bad(problem: str) -> DataFormatError:
        return DataFormatError(json_path, f"record {index}: {problem}")

    if not isinstance(record, dict):
        raise bad(f"expected an object, got {type(record).__name__}")
    missing = [key for key in REQUIRED_KEYS if key not in record]
    if missing:
        raise bad(f"missing key(s) {', '.join(missing)}")
    split = record["split"]
    if split not in fmt.splits:
        raise bad(f"split {split!r} is not one of {', '.join(fmt.splits)}")
    pid = record["id"]
    if not isinstance(pid, int) or isinstance(pid, bool) or pid < fmt.first_id:
        raise bad(f"id {pid!r} is not an integer >= {fmt.first_id}")
    captions = record["captions"]
    if not isinstance(captions, list) or not captions:
        raise bad("no captions")
    if not all(isinstance(c, str) and c.strip() for c in captions):
        raise bad("every caption must be a non-empty string")
    if not isinstance(record["processed_tokens"], list):
        raise bad("processed_tokens must be a list")
    file_path = record["file_path"]
    if not isinstance(file_path, str) or not file_path:
        raise bad("file_path must be a non-empty string")
    path = imgs / file_path
    if not path.is_file():
        raise bad(f"image file {path} does not exist")
    return PedesItem(path, pid, list(captions))


def load_pedes(root: str | Path, fmt: PedesFormat) -> PedesData:
    """Read and validate ``root/<json>`` and the images it lists.

    Raises:
        DataFormatError: a missing file or folder, unreadable JSON, or the first malformed record (naming the
            JSON file and the record's index).
    """
    root = Path(root)
    json_path, imgs = root / fmt.json_name, root / "imgs"
    if not json_path.is_file():
        raise DataFormatError(
            json_path, f"missing annotation file ({fmt.name} needs imgs/ and {fmt.json_name})"
        )
    if not imgs.is_dir():
        raise DataFormatError(imgs, f"missing image folder ({fmt.name} needs imgs/ and {fmt.json_name})")
    try:
        records = json.loads(json_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataFormatError(json_path, f"not readable JSON ({type(err).__name__}: {err})") from None
    if not isinstance(records, list) or not records:
        raise DataFormatError(json_path, "expected a non-empty JSON list of records")
    data = PedesData(root, {split: [] for split in fmt.splits})
    for index, record in enumerate(records):
        item = _check_record(record, index, json_path, fmt, imgs)
        data.splits[record["split"]].append(item)
    for split in ("train", "test"):
        if not data.splits[split]:
            raise DataFormatError(json_path, f"no {split!r} records")
    # headers only (about 30 us an image): a run stops on a bad file before its first step
    check_image_headers((item.path for items in data.splits.values() for item in items), listed_in=json_path)
    return data


def check_pedes(root: str | Path, fmt: PedesFormat) -> dict[str, int]:
    """Validate a PEDES folder (layout, every record, image headers) and count what it holds.

    Returns:
        ``images``, ``ids``, ``captions`` over all splits, then the number of images of each split.
    """
    data = load_pedes(root, fmt)
    for items in data.splits.values():
        for item in items:
            with open(item.path, "rb") as fh:
                head = fh.read(8)
            if not (head.startswith(b"\xff\xd8\xff") or head.startswith(b"\x89PNG")):
                raise DataFormatError(item.path, "not a JPEG or PNG image (bad header)")
    every = [item for items in data.splits.values() for item in items]
    counts = {
        "images": len(every),
        "ids": len({item.pid for item in every}),
        "captions": sum(len(item.captions) for item in every),
    }
    for split, items in data.splits.items():
        counts[split] = len(items)
    return counts
