"""The PEDES annotation format shared by CUHK-PEDES and ICFG-PEDES: reading, checking, synthetic writing.

Both datasets are an ``imgs/`` folder plus one JSON file, a list of records::

    {"split": "train", "captions": ["A man wearing ..."], "file_path": "CUHK01/0363004.png",
     "processed_tokens": [["a", "man", "wearing", ...]], "id": 1}

``file_path`` is relative to ``imgs/``. One record is one image; each of its captions is one text query at
test time (IRRA's protocol: every test caption queries the gallery of all test images).
"""

from __future__ import annotations

import io
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from saip_bench.errors import DataFormatError, SaipError
from saip_bench.io import atomic_path

log = logging.getLogger(__name__)

REQUIRED_KEYS = ("split", "captions", "file_path", "processed_tokens", "id")
SYNTH_SIZE = (128, 64)  # (H, W): real crops vary in size and every recipe resizes; small keeps writers fast
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


def _jpeg(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=92)
    return buf.getvalue()


def split_ids(n: int, splits: tuple[str, ...]) -> list[str]:
    """The split of each of ``n`` identities: train gets about 60 %, test (and val) share the rest.

    Every named split gets at least one identity when ``n`` allows; train and test always do.
    """
    if len(splits) == 2:
        n_test = max(1, n // 3)
        return ["train"] * (n - n_test) + ["test"] * n_test
    n_val = max(1, n // 5) if n >= 3 else 0
    n_test = max(1, n // 5)
    return ["train"] * (n - n_val - n_test) + ["val"] * n_val + ["test"] * n_test


def write_pedes_synth(
    out: str | Path, fmt: PedesFormat, *, ids: int, images: int, seed: int, file_path: Any
) -> None:
    """Write a synthetic PEDES dataset into ``out`` (which may exist only if empty), atomically.

    Each identity gets ``max(2, images // ids)`` crops from random cameras; each crop gets
    ``fmt.captions_per_image`` captions generated from the identity's appearance, so text and image agree.

    Args:
        out: target folder (its content: ``imgs/`` and the JSON file).
        fmt: the dataset's format.
        ids: number of identities (at least 2: one train, one test).
        images: total number of images to aim for.
        seed: same seed, same files.
        file_path: ``file_path(split, pid, camid, n) -> str``, the image's path relative to ``imgs/``.
    """
    from saip_bench.synth import SynthWorld
    from saip_bench.synth.caption import describe

    out = Path(out)
    if ids < 2:
        raise SaipError(f"{fmt.name} needs at least 2 identities (one train, one test), got {ids}")
    if images < 1:
        raise SaipError(f"{fmt.name}: images must be at least 1, got {images}")
    if out.exists() and any(out.iterdir()):
        raise SaipError(f"{out}: folder is not empty; refusing to write {fmt.name} over it")
    rng = np.random.default_rng([seed % 2**63, 7])
    world = SynthWorld(seed)
    pids = [fmt.first_id + i for i in range(ids)]
    split_of = dict(zip(pids, [str(s) for s in rng.permutation(split_ids(ids, fmt.splits))], strict=True))
    per_id = max(2, images // ids)
    records: list[dict[str, Any]] = []
    with atomic_path(out) as tmp:
        for pid in pids:
            identity = world.identity(pid)
            for n in range(per_id):
                camid = int(rng.integers(1, 7))
                sample = world.render_person(identity, camid, size=SYNTH_SIZE, rng=rng)
                captions = [sample.caption] + [
                    describe(identity.appearance, rng) for _ in range(fmt.captions_per_image - 1)
                ]
                rel = file_path(split_of[pid], pid, camid, n)
                target = tmp / "imgs" / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(_jpeg(sample.image))
                records.append({
                    "split": split_of[pid], "captions": captions, "file_path": rel,
                    "processed_tokens": [caption_tokens(c) for c in captions], "id": pid,
                })  # fmt: skip
        (tmp / fmt.json_name).write_text(json.dumps(records), encoding="utf-8")
    log.debug("wrote synthetic %s (%d ids, %d images) to %s", fmt.name, ids, len(records), out)
