"""MSMT17 (V1): list-file layout, loader, checker and synthetic writer.

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

import numpy as np

from saip_bench.errors import ConfigError, DataFormatError
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


def _file_name(pid: int, index: int, camid: int, frame: int) -> str:
    return f"{pid:04d}/{pid:04d}_{index:03d}_{camid:02d}_0303morning_{frame:04d}_0.jpg"


def write_synth(out: str | Path, *, ids: int, images: int, seed: int) -> None:
    """Write a synthetic MSMT17_V1 folder at ``out``: ``images`` crops of ``ids`` identities.

    Half the identities (rounded up) are training identities (about 1 in 10 of their images go to
    ``list_val.txt``), the rest test identities; each test identity's first quarter of images (at least one)
    are queries, the rest gallery. An identity's images cycle through cameras, so every query has a gallery
    match under another camera.
    """
    from PIL import Image

    from saip_bench.io import atomic_path
    from saip_bench.synth import SynthWorld

    if ids < 2 or images < 2 * ids:
        raise ConfigError(
            f"msmt17 synth needs ids >= 2 and images >= 2 x ids (got ids={ids}, images={images})"
        )
    n_train = (ids + 1) // 2
    per_id = [images // ids + (1 if i < images % ids else 0) for i in range(ids)]
    world = SynthWorld(seed)
    rng = np.random.default_rng(seed + 17)
    lines: dict[str, list[str]] = {split: [] for split in LISTS}
    with atomic_path(out) as tmp:
        for gid in range(ids):
            is_train = gid < n_train
            pid = gid if is_train else gid - n_train
            identity = world.identity(gid)
            cam0 = int(rng.integers(0, NUM_CAMERAS))
            n_query = max(1, per_id[gid] // 4)
            for j in range(per_id[gid]):
                camid = (cam0 + j) % NUM_CAMERAS + 1
                rel = _file_name(pid, j, camid, int(rng.integers(0, 10000)))
                path = tmp / ("train" if is_train else "test") / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                sample = world.render_person(identity, camid, size=(128, 64), rng=rng)
                Image.fromarray(sample.image).save(path, quality=92)
                split = (
                    ("val" if j % 10 == 9 else "train")
                    if is_train
                    else ("query" if j < n_query else "gallery")
                )
                lines[split].append(f"{rel} {pid}")
        for split, (_, list_name) in LISTS.items():
            (tmp / list_name).write_text("".join(f"{line}\n" for line in lines[split]), encoding="utf-8")


#: The dataset registry's entry point (``DATASETS.get(name).load(root, ...)``).
load = load_msmt17
