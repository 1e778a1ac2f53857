"""PA-100K: ``annotation.mat`` (MATLAB v5, read with scipy) and the crops in ``data/``.

The real ``annotation.mat`` holds ``train_images_name`` / ``val_images_name`` / ``test_images_name`` as
``(N, 1)`` cell arrays of file names (``loadmat`` gives object arrays whose items are 1-element string
arrays), ``train_label`` / ``val_label`` / ``test_label`` as ``(N, 26)`` 0/1 matrices and ``attributes`` as a
``(26, 1)`` cell array of names. 80,000 / 10,000 / 10,000 images. Training uses ``trainval`` (train + val),
evaluation ``test``, as in Rethinking_of_PAR.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from saip_bench.errors import DataFormatError
from saip_bench.synth.attributes import PA100K_ATTRIBUTES
from saip_bench.tasks.attribute.data.common import (
    AttributeSet,
    binary_labels,
    check_partition,
    verify_images,
)

log = logging.getLogger(__name__)

ANNOTATION = "annotation.mat"
IMAGE_DIR = "data"
SPLITS = ("train", "val", "test")

#: The 26 attributes in ``annotation.mat`` column order.
ATTRIBUTES: tuple[str, ...] = PA100K_ATTRIBUTES


def _read_mat(path: Path) -> dict:
    from scipy.io import loadmat  # scipy.io is slow to import and only needed here

    if not path.is_file():
        raise DataFormatError(path, "annotation file does not exist")
    try:
        return loadmat(str(path))
    except NotImplementedError:
        raise DataFormatError(
            path, "MATLAB v7.3 (HDF5) files are not supported; re-save it with -v7"
        ) from None
    except Exception as err:  # scipy raises ValueError, TypeError, OSError... for a damaged file
        raise DataFormatError(path, f"not a readable MATLAB file ({type(err).__name__}: {err})") from None


def _strings(path: Path, mat: dict, key: str) -> list[str]:
    """A cell array of strings (or a char matrix) as a list of Python strings."""
    if key not in mat:
        raise DataFormatError(path, f"missing key {key!r}")
    array = np.asarray(mat[key])
    if array.dtype.kind == "U":  # a char matrix: one padded row per name
        return [str(item).strip() for item in array.ravel()]
    if array.dtype != object or (array.ndim == 2 and 1 not in array.shape) or array.ndim > 2:
        raise DataFormatError(
            path, f"{key!r} must be an (N, 1) cell array of strings, got {array.dtype} {array.shape}"
        )
    names = []
    for i, item in enumerate(array.ravel()):
        item = np.asarray(item).ravel()
        if item.size != 1 or item.dtype.kind != "U":
            raise DataFormatError(path, f"{key!r}[{i}] is not a string")
        names.append(str(item[0]).strip())
    return names


def load(root: str | Path) -> AttributeSet:
    """Read ``root/annotation.mat``; images are expected in ``root/data/`` (not opened here).

    Raises:
        DataFormatError: a missing key, inconsistent sizes, labels other than 0/1, or an unsafe file name.
    """
    root = Path(root)
    path = root / ANNOTATION
    mat = _read_mat(path)
    attr_names = _strings(path, mat, "attributes")
    names: list[str] = []
    labels: list[np.ndarray] = []
    partition: dict[str, np.ndarray] = {}
    for split in SPLITS:
        split_names = _strings(path, mat, f"{split}_images_name")
        key = f"{split}_label"
        if key not in mat:
            raise DataFormatError(path, f"missing key {key!r}")
        labels.append(binary_labels(path, key, mat[key], (len(split_names), len(attr_names))))
        partition[split] = np.arange(len(names), len(names) + len(split_names), dtype=np.int64)
        names += split_names
    partition["trainval"] = np.concatenate([partition["train"], partition["val"]])
    check_partition(path, partition, len(names))
    return AttributeSet.from_files(
        "pa100k", root, source=path, image_dir=IMAGE_DIR, names=names, attr_names=attr_names,
        labels=np.concatenate(labels, axis=0), partition=partition,
    )  # fmt: skip


def check(root: str | Path) -> dict[str, int]:
    """Validate a PA-100K folder: the annotation's keys and shapes, and every listed image's header.

    Returns:
        ``{"train", "val", "test", "trainval", "attributes"}`` counts.
    """
    data = load(root)
    verify_images(data.image_paths, data.root / ANNOTATION)
    counts = data.counts()
    log.debug("PA-100K at %s: %s", root, counts)
    return counts
