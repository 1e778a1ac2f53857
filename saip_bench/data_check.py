"""``saip data``'s library: write synthetic datasets in the real formats, and check dataset folders.

Each dataset's format code is named by its :class:`~saip_bench.dataset_spec.DatasetSpec` (``spec.check(root)``
and ``spec.write_synth(out, options)``); this module only finds folders, dispatches and summarises. A
dataset whose spec names no check (or no writer) is "not yet supported".
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from saip_bench.dataset_spec import DatasetSpec, SynthOptions
from saip_bench.datasets import DATASETS, synth_formats
from saip_bench.errors import DataFormatError, SaipError
from saip_bench.io import atomic_path

log = logging.getLogger(__name__)

Status = Literal["found", "missing", "malformed", "not yet supported"]
ALL = "all"


@dataclass
class DatasetStatus:
    """What ``saip data check`` found for one dataset."""

    name: str
    title: str
    task: str
    status: Status
    path: Path | None = None  # the folder checked (or looked for, when missing)
    counts: dict[str, int] = field(default_factory=dict)
    official: dict[str, int] = field(default_factory=dict)
    problem: str | None = None  # first problem, one line
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """False only for a malformed dataset (missing or unsupported ones are not errors)."""
        return self.status != "malformed"


def locate(info: DatasetSpec, root: Path) -> Path | None:
    """The dataset's folder under ``root``: its usual folder name first, then its aliases."""
    for name in (info.folder, *info.aliases):
        candidate = root / name
        if candidate.is_dir():
            return candidate
    return None


def check_dataset(info: DatasetSpec, path: Path | None, *, looked_in: Path | None = None) -> DatasetStatus:
    """Check one dataset folder (``path`` None = not found) with the dataset's ``check``."""
    status = DatasetStatus(info.name, info.title, info.task, "missing", official=dict(info.official_counts))
    supported = info.checker is not None
    if path is None:
        status.path = looked_in / info.folder if looked_in is not None else None
        if not supported:
            status.status = "not yet supported"
        return status
    status.path = path
    if not path.is_dir():
        status.problem = f"{path}: no such folder"
        return status
    if not supported:
        status.status = "not yet supported"
        status.notes.append(f"folder present at {path}, but saip-bench cannot read this format yet")
        return status
    try:
        counts = info.check(path)
    except SaipError as err:
        status.status = "malformed"
        status.problem = _one_line(str(err))
        return status
    except OSError as err:  # unreadable file or folder: the data's fault, not a bug
        status.status = "malformed"
        status.problem = _one_line(f"{getattr(err, 'filename', None) or path}: {err.strerror or err}")
        return status
    status.status = "found"
    status.counts = {str(k): int(v) for k, v in (counts or {}).items()}
    if any(status.counts.get(key, official) < official for key, official in info.official_counts.items()):
        # Synthetic and partial copies are legitimately small: a note, never an error.
        status.notes.append("smaller than official")
    return status


def check_datasets(
    root: str | Path | None, overrides: Mapping[str, str | Path] | None = None
) -> list[DatasetStatus]:
    """Check all 12 evaluation datasets, in the paper's order.

    Args:
        root: Folder holding datasets under their usual folder names (or aliases); may be None when every
            dataset of interest is given in ``overrides``.
        overrides: Dataset name -> folder, used instead of looking under ``root``.

    Returns:
        One :class:`DatasetStatus` per dataset, for all 12.

    Raises:
        SaipError: ``root`` is not a folder, or an override names an unknown dataset.
    """
    overrides = dict(overrides or {})
    for name in overrides:
        DATASETS.get(name)  # a miss lists the valid names
    root_path = Path(root) if root is not None else None
    if root_path is not None and not root_path.is_dir():
        raise DataFormatError(root_path, "data root is not a folder")
    results = []
    for name, info in DATASETS.items():
        if name in overrides:
            path: Path | None = Path(overrides[name])
        elif root_path is not None:
            path = locate(info, root_path)
        else:
            path = None
        results.append(check_dataset(info, path, looked_in=root_path))
        log.debug("%s: %s", name, results[-1].status)
    return results


def resolve_formats(name: str) -> tuple[list[DatasetSpec], list[DatasetSpec]]:
    """(supported, not yet supported) formats for ``--format NAME|all``.

    Raises:
        SaipError: unknown name (the message lists the valid names); or a single named format whose
            writer does not exist yet.
    """
    formats = synth_formats()
    if name == ALL:
        infos = [info for _, info in formats.items()]
        supported = [info for info in infos if info.writer is not None]
        return supported, [info for info in infos if info not in supported]
    try:
        info = formats.get(name)
    except SaipError as err:
        raise SaipError(f"{err}, {ALL}") from None
    if info.writer is None:
        raise SaipError(f"synthetic format {name!r} is not yet supported (it names no writer)")
    return [info], []


def write_synth_dataset(
    info: DatasetSpec, out_root: str | Path, *, ids: int, images: int, seed: int, overwrite: bool = False
) -> Path:
    """Write a synthetic ``info`` dataset to ``out_root/<info.folder>``, atomically.

    The dataset is written into a temporary folder beside its final place and renamed when complete, so a
    failure leaves nothing half-written.

    Args:
        info: The dataset (or ``lup``) to write.
        out_root: Data root; the dataset goes into its usual folder name under it.
        ids: Number of identities.
        images: Number of images (the format module decides how they split).
        seed: Random seed; the same seed writes the same files.
        overwrite: Replace an existing folder; without it an existing folder is an error, because it
            could be a real dataset.

    Returns:
        The dataset folder.
    """
    if ids < 1 or images < 1:
        raise SaipError(f"--ids and --images must be at least 1 (got ids={ids}, images={images})")
    if info.writer is None:
        raise SaipError(f"synthetic format {info.name!r} is not yet supported (it names no writer)")
    final = Path(out_root) / info.folder
    if final.exists() and not overwrite:
        raise SaipError(f"{final}: already exists; choose another --out or pass --overwrite to replace it")
    with atomic_path(final) as tmp:
        tmp.mkdir(parents=True)
        info.write_synth(tmp, SynthOptions(ids=ids, images=images, seed=seed))
    log.debug("wrote synthetic %s to %s", info.title, final)
    return final


def check_image_headers(paths: Iterable[Path], *, listed_in: Path | None = None) -> int:
    """Every file of ``paths`` exists and has an image header PIL can identify; returns how many.

    Only the header is read (``Image.open`` decodes no pixels: about 30 us a file, 3 s for 100k), so a
    loader can afford it on every file a run will read, before the first step; a file truncated after its
    header is found by ``saip data check``'s full decode or when it is decoded.

    Raises:
        DataFormatError: naming the first missing or unidentifiable file (and ``listed_in``, the annotation
            file that lists it, where there is one).
    """
    from PIL import Image, UnidentifiedImageError

    count = 0
    where = f" listed in {listed_in.name}" if listed_in is not None else ""
    for path in paths:
        try:
            with Image.open(path):
                pass
        except FileNotFoundError:
            raise DataFormatError(path, f"image{where} does not exist") from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
            raise DataFormatError(path, f"not a readable image ({err}){where}") from None
        count += 1
    return count


def _one_line(text: str) -> str:
    return " ".join(line.strip() for line in text.splitlines() if line.strip())
