"""MSMT17 (V1): list-file layout, loader and checker (the writer: :mod:`.synth`).

Layout (``MSMT17_V1/``)::

    train/0000/0000_000_01_0303morning_0015_0.jpg ...   test/0000/... (test pids numbered from 0 again)
    list_train.txt  list_val.txt                          (relative to train/)
    list_query.txt  list_gallery.txt                      (relative to test/)

Each list line is ``<pid folder>/<file name> <pid>``; the camera is the third ``_`` field of the file name
(1-15). As in the field's published numbers, the training set is ``list_train`` + ``list_val`` (32,621
images, 1,041 ids). MSMT17_V2 names its folders ``mask_train_v2``/``mask_test_v2``: it is rejected with a
clear message rather than half-read.
"""

from __future__ import annotations

import re
from pathlib import Path

from saip_bench.data_check import check_image_headers
from saip_bench.errors import DataFormatError
from saip_bench.tasks.reid.data.market1501 import ReidSplits

LISTS = {
    "train": ("train", "list_train.txt"),
    "val": ("train", "list_val.txt"),
    "query": ("test", "list_query.txt"),
    "gallery": ("test", "list_gallery.txt"),
}
NUM_CAMERAS = 15
#: ``0000/0000_000_01_0303morning_0015_0.jpg``: pid folder / pid_index_camera_date+time_frame_n.jpg
NAME_RE = re.compile(r"^(\d+)/(\d+)_(\d+)_(\d+)_([0-9A-Za-z]+)_(\d+)_(\d+)\.jpe?g$")
_V2_MARKERS = ("mask_train_v2", "mask_test_v2")
_JPEG_MAGIC = b"\xff\xd8"

Item = tuple[Path, int, int]


def _reject_v2(root: Path) -> None:
    if any((root / m).exists() for m in _V2_MARKERS) or root.name.upper().startswith("MSMT17_V2"):
        raise DataFormatError(
            root,
            "MSMT17_V2 layout (mask_train_v2/, mask_test_v2/) is not supported; "
            "use MSMT17_V1 (train/, test/)",
        )


def camera_of(name: str) -> int:
    """Camera id (1-15) from an MSMT17 file name, e.g. ``0000_000_01_0303morning_0015_0.jpg`` -> 1."""
    return int(Path(name).name.split("_")[2])


def read_list(root: Path, split: str, *, verify_files: bool = True) -> list[Item]:
    """Parse one list file into ``(absolute path, pid, camid)`` items.

    Raises:
        DataFormatError: missing list file, malformed line, camera out of range, or a listed image that is
            missing or not a JPEG; the message names the file (and the line).
    """
    folder, list_name = LISTS[split]
    list_path = root / list_name
    if not list_path.is_file():
        raise DataFormatError(list_path, "list file is missing")
    items: list[Item] = []
    with open(list_path, encoding="utf-8") as handle:
        for number, raw in enumerate(handle, 1):
            line = raw.strip()
            if not line:
                continue
            parts = line.split()
            where = f"line {number}"
            if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
                raise DataFormatError(
                    list_path, f"{where}: expected '<folder>/<name>.jpg <pid>', got {line!r}"
                )
            rel, pid = parts[0], int(parts[1])
            match = NAME_RE.match(rel)
            if match is None:
                expected = "0000/0000_000_01_0303morning_0015_0.jpg"
                raise DataFormatError(
                    list_path, f"{where}: bad image name {rel!r} (expected like {expected})"
                )
            camid = int(match.group(4))
            if pid < 0 or not 1 <= camid <= NUM_CAMERAS:
                raise DataFormatError(
                    list_path, f"{where}: pid {pid} / camera {camid} out of range in {rel!r}"
                )
            path = root / folder / rel
            if verify_files:
                try:
                    with open(path, "rb") as image:
                        head = image.read(2)
                except FileNotFoundError:
                    raise DataFormatError(
                        path, f"listed in {list_name} {where} but the image is missing"
                    ) from None
                if head != _JPEG_MAGIC:
                    raise DataFormatError(path, "not a JPEG file (corrupt image)")
            items.append((path, pid, camid))
    if not items and split != "val":  # the validation list may legitimately be empty in a small copy
        raise DataFormatError(list_path, "list file is empty")
    return items


def _check_layout(root: Path) -> None:
    root = Path(root)
    if not root.is_dir():
        raise DataFormatError(root, "no such folder")
    _reject_v2(root)
    for sub in ("train", "test"):
        if not (root / sub).is_dir():
            raise DataFormatError(root / sub, "folder is missing (expected MSMT17_V1 layout)")


def load_msmt17(root: str | Path, *, verify_files: bool = True) -> ReidSplits:
    """Read ``MSMT17_V1/`` as torchreid does: train = train + val lists with pids relabelled 0..N-1, query and
    gallery with their own pids; camera ids 0-based (file camera - 1)."""
    root = Path(root)
    _check_layout(root)
    lists = {split: read_list(root, split, verify_files=verify_files) for split in LISTS}
    if verify_files:  # headers only (about 30 us an image): a run stops on a bad file before its first step
        for split, items in lists.items():
            check_image_headers((path for path, _, _ in items), listed_in=root / f"list_{split}.txt")
    zero_based = {split: [(path, pid, cam - 1) for path, pid, cam in items] for split, items in lists.items()}
    train = zero_based["train"] + zero_based["val"]
    relabel = {pid: i for i, pid in enumerate(sorted({pid for _, pid, _ in train}))}
    return ReidSplits(
        train=[(path, relabel[pid], cam) for path, pid, cam in train],
        query=zero_based["query"],
        gallery=zero_based["gallery"],
    )


def check(root: Path) -> dict[str, int]:
    """Validate an MSMT17_V1 folder; return its counts (``train``, ``train_ids``, ``query``, ``gallery``)."""
    splits = load_msmt17(root)
    return {
        "train": len(splits.train),
        "train_ids": splits.num_train_pids,
        "query": len(splits.query),
        "gallery": len(splits.gallery),
    }
