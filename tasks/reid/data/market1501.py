"""Market-1501: its real on-disk layout, a loader, a format check, and a synthetic writer.

Layout (``Market-1501-v15.09.15/``): ``bounding_box_train/``, ``bounding_box_test/`` (the gallery) and
``query/``, each holding ``PPPP_cCsS_FFFFFF_BB.jpg`` crops: person id, camera 1-6, sequence, frame, box.
Person id -1 marks junk images (dropped everywhere, as torchreid does) and 0000 distractors (kept in the
gallery only). Other files in the folders (the release ships ``Thumbs.db``) are ignored.
"""

from __future__ import annotations

import io
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from saip_bench.errors import DataFormatError, SaipError
from saip_bench.io import atomic_path

log = logging.getLogger(__name__)

FOLDER = "Market-1501-v15.09.15"
SPLIT_DIRS = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}
NAME_RE = re.compile(r"^(-1|\d{4})_c(\d)s(\d)_(\d{6})_(\d{2})\.jpg$")
NUM_CAMERAS = 6
FULL_CHECK_LIMIT = 2000  # decode every image up to this many files, an even sample beyond
CROP_SIZE = (128, 64)  # (H, W) of the released crops

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
    root = Path(root)
    if not (root / SPLIT_DIRS["train"]).is_dir() and (root / FOLDER).is_dir():
        return root / FOLDER
    return root


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


def _jpeg(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=92)
    return buf.getvalue()


def _camera_counts(rng: np.random.Generator, n_images: int) -> dict[int, int]:
    """Spread one person's images over 2-6 cameras; the first camera gets at least 2 (one can be a query)."""
    k = int(rng.integers(2, min(NUM_CAMERAS, n_images - 1) + 1))
    cams = [int(c) + 1 for c in rng.permutation(NUM_CAMERAS)[:k]]
    counts = {c: 1 for c in cams}
    counts[cams[0]] += 1
    for _ in range(n_images - k - 1):
        counts[cams[int(rng.integers(k))]] += 1
    return counts


def write_synth(out: str | Path, *, ids: int, images: int, seed: int) -> None:
    """Write a synthetic Market-1501 into the folder ``out`` (its content: the three split folders).

    Rules: ``ids // 2`` training identities and the rest test identities (disjoint); every identity gets
    ``max(3, images // ids)`` crops over 2-6 cameras. For each test identity and camera with at least two of
    its crops, one crop (two when it has four or more) goes to ``query/``; all other test crops go to
    ``bounding_box_test/``, plus ``max(1, n_test // 2)`` distractors (``0000``) and ``max(1, n_test // 4)``
    junk crops (``-1``). Crops are 128x64 like the release's.

    Args:
        out: Target folder; it may exist only if empty. Written atomically (all or nothing).
        ids: Number of identities (at least 2).
        images: Total number of identity crops to aim for.
        seed: Same seed, same files.
    """
    from saip_bench.synth import SynthWorld

    out = Path(out)
    if ids < 2:
        raise SaipError(f"market1501 needs at least 2 identities (one train, one test), got {ids}")
    if images < 1:
        raise SaipError(f"market1501: images must be at least 1, got {images}")
    if out.exists() and any(out.iterdir()):
        raise SaipError(f"{out}: folder is not empty; refusing to write market1501 over it")
    rng = np.random.default_rng([seed % 2**63, 1501])
    world = SynthWorld(seed)
    id_space = 1501 if ids <= 1500 else 9999
    pids = sorted(int(p) + 1 for p in rng.choice(id_space, size=ids, replace=False))
    order = [int(i) for i in rng.permutation(ids)]
    n_train = ids // 2
    train_ids, test_ids = sorted(pids[i] for i in order[:n_train]), sorted(pids[i] for i in order[n_train:])
    per_id = max(3, images // ids)
    used: set[str] = set()
    frame = {c: int(rng.integers(0, 2000)) for c in range(1, NUM_CAMERAS + 1)}

    def name(pid: int, cam: int) -> str:
        while True:
            frame[cam] += int(rng.integers(1, 60))
            seq = 1 + min(5, frame[cam] // 30000)
            label = f"{pid:04d}" if pid >= 0 else "-1"
            candidate = f"{label}_c{cam}s{seq}_{frame[cam] % 1000000:06d}_{int(rng.integers(1, 9)):02d}.jpg"
            if candidate not in used:
                used.add(candidate)
                return candidate

    def crop(pid: int, cam: int) -> bytes:
        # Distractors and junk are other people: ids far above the labelled ones.
        identity = world.identity(pid if pid > 0 else 10_000_000 + int(rng.integers(1 << 20)))
        image = world.render_person(identity, cam, size=CROP_SIZE, rng=rng).image
        if pid == -1:  # junk is a bad detection: a piece of a person blown up to the crop size
            h, w = CROP_SIZE
            y0 = int(rng.integers(0, h // 2))
            piece = Image.fromarray(image[y0 : y0 + h // 2, :]).resize((w, h), Image.BILINEAR)
            image = np.asarray(piece)
        return _jpeg(image)

    with atomic_path(out) as tmp:
        dirs = {split: tmp / sub for split, sub in SPLIT_DIRS.items()}
        for d in dirs.values():
            d.mkdir(parents=True)
        for pid in train_ids:
            for cam, n in _camera_counts(rng, per_id).items():
                for _ in range(n):
                    (dirs["train"] / name(pid, cam)).write_bytes(crop(pid, cam))
        for pid in test_ids:
            for cam, n in _camera_counts(rng, per_id).items():
                n_query = 0 if n < 2 else (1 if n < 4 else 2)
                for j in range(n):
                    split = "query" if j < n_query else "gallery"
                    (dirs[split] / name(pid, cam)).write_bytes(crop(pid, cam))
        n_test = len(test_ids)
        for pid, count in ((0, max(1, n_test // 2)), (-1, max(1, n_test // 4))):
            for _ in range(count):
                cam = 1 + int(rng.integers(NUM_CAMERAS))
                (dirs["gallery"] / name(pid, cam)).write_bytes(crop(pid, cam))
    log.debug("wrote synthetic Market-1501 (%d train ids, %d test ids) to %s", len(train_ids), n_test, out)


#: The dataset registry's entry point (``DATASETS.get(name).load(root, ...)``).
load = load_market1501
