"""Market-1501: its real on-disk layout, a loader and a format check (the writer: :mod:`.synth`).

Layout (``Market-1501-v15.09.15/``): ``bounding_box_train/``, ``bounding_box_test/`` (the gallery) and
``query/``, each holding ``PPPP_cCsS_FFFFFF_BB.jpg`` crops: person id, camera 1-6, sequence, frame, box.
Person id -1 marks junk images (dropped everywhere, as torchreid does) and 0000 distractors (kept in the
gallery only). Other files in the folders (the release ships ``Thumbs.db``) are ignored.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from saip_bench.data_check import check_image_headers
from saip_bench.dataset_spec import dataset_folder
from saip_bench.errors import DataFormatError

log = logging.getLogger(__name__)

FOLDER = "Market-1501-v15.09.15"
SPLIT_DIRS = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}
NAME_RE = re.compile(r"^(-1|\d{4})_c(\d)s(\d)_(\d{6})_(\d{2})\.jpg$")
NUM_CAMERAS = 6
FULL_CHECK_LIMIT = 2000  # decode every image up to this many files, an even sample beyond

Item = tuple[Path, int, int]  # (image path, person id, 0-based camera id)


@dataclass
class ReidSplits:
    """A re-ID dataset's three lists of ``(path, pid, camid)``; camera ids are 0-based, as in torchreid.

    ``train`` pids are relabelled 0..N-1; ``query`` and ``gallery`` keep the dataset's own ids.
    """

    train: list[Item] = field(default_factory=list)
    query: list[Item] = field(default_factory=list)
    gallery: list[Item] = field(default_factory=list)

    @property
    def num_train_pids(self) -> int:
        return len({pid for _, pid, _ in self.train})

    @property
    def num_train_cams(self) -> int:
        return len({cam for _, _, cam in self.train})


def resolve_root(root: str | Path) -> Path:
    """The folder holding the three split folders: ``root`` itself or ``root/Market-1501-v15.09.15``."""
    return dataset_folder(root, FOLDER, SPLIT_DIRS["train"])


def parse_name(path: Path) -> tuple[int, int]:
    """``(pid, camera 1-6)`` of a Market-1501 file name; DataFormatError when the name does not fit."""
    m = NAME_RE.match(path.name)
    if m is None:
        raise DataFormatError(path, "file name does not match Market-1501's PPPP_cCsS_FFFFFF_BB.jpg")
    pid, cam = int(m.group(1)), int(m.group(2))
    if not 1 <= cam <= NUM_CAMERAS:
        raise DataFormatError(path, f"camera {cam} is outside Market-1501's cameras 1-{NUM_CAMERAS}")
    return pid, cam


def _split_files(root: Path) -> dict[str, list[Path]]:
    files = {}
    for split, name in SPLIT_DIRS.items():
        folder = root / name
        if not folder.is_dir():
            raise DataFormatError(
                folder, f"missing folder (Market-1501 needs {', '.join(SPLIT_DIRS.values())})"
            )
        files[split] = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".jpg")
    return files


def _verify_jpeg(path: Path, decode: bool) -> None:
    try:
        with open(path, "rb") as fh:
            head = fh.read(3)
        if head != b"\xff\xd8\xff":
            raise DataFormatError(path, "not a JPEG file (bad header)")
        if decode:
            with Image.open(path) as img:
                img.load()
    except DataFormatError:
        raise
    except Exception as err:  # truncated or corrupt: PIL raises many types
        raise DataFormatError(path, f"corrupt JPEG ({type(err).__name__}: {err})") from None


def load_market1501(root: str | Path) -> ReidSplits:
    """Read the splits as torchreid does: junk (-1) dropped, distractors (0) kept in the gallery only.

    Args:
        root: The ``Market-1501-v15.09.15`` folder (or its parent).
    """
    root = resolve_root(root)
    files = _split_files(root)
    splits = ReidSplits()
    for split in ("train", "query", "gallery"):
        items: list[Item] = []
        for path in files[split]:
            pid, cam = parse_name(path)
            if pid == -1 or (pid == 0 and split != "gallery"):
                continue
            items.append((path, pid, cam - 1))
        setattr(splits, split, items)
    relabel = {pid: i for i, pid in enumerate(sorted({pid for _, pid, _ in splits.train}))}
    splits.train = [(p, relabel[pid], cam) for p, pid, cam in splits.train]
    # headers only (about 30 us an image): a run stops on a bad file before its first step
    check_image_headers(p for items in (splits.train, splits.query, splits.gallery) for p, _, _ in items)
    return splits


def check(root: str | Path) -> dict[str, int]:
    """Validate a Market-1501 folder: folders, file names, cameras, JPEG headers (and decodes).

    Every file's header is checked; every image is decoded when the dataset has at most
    ``FULL_CHECK_LIMIT`` files, an even sample otherwise.

    Returns:
        ``{"train", "train_ids", "query", "gallery"}`` counts as torchreid sees them (junk excluded).

    Raises:
        DataFormatError: naming the first missing folder or bad file.
    """
    root = resolve_root(root)
    files = _split_files(root)
    every = [p for split in ("train", "query", "gallery") for p in files[split]]
    for path in every:
        parse_name(path)
    if not files["train"]:
        raise DataFormatError(root / SPLIT_DIRS["train"], "no .jpg images")
    if not files["query"]:
        raise DataFormatError(root / SPLIT_DIRS["query"], "no .jpg images")
    step = max(1, len(every) // FULL_CHECK_LIMIT)
    sampled = set(every[::step])
    for path in every:
        _verify_jpeg(path, decode=path in sampled)
    splits = load_market1501(root)
    return {"train": len(splits.train), "train_ids": splits.num_train_pids, "query": len(splits.query),
            "gallery": len(splits.gallery)}  # fmt: skip
