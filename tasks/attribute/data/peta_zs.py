"""PETA-zs: PETA's 19,000 images ``images/%05d.png`` and the zero-shot split ``dataset_zs_run0.pkl``.

The split file (Rethinking_of_PAR, Jia et al.) is a pickled dict - an ``easydict.EasyDict`` in the published
files - with ``image_name`` (file names under ``images/``), ``label`` (``(N, 35)`` 0/1), ``attr_name`` (35
names), ``partition`` (``train`` / ``val`` / ``trainval`` / ``test`` index arrays; a list of such arrays in
multi-run files, of which run 0 is used) and ``weight_trainval`` (positive ratios, possibly wrapped in a
list). Persons in ``train`` never appear in ``test``; the file carries no identities, so that cannot be
checked here beyond the indices being disjoint. Its ``root`` entry (the authors' path) is ignored.

The pickle is read with a restricted unpickler (numpy arrays, plain containers and EasyDict only): a split
file never needs to run code, so one that tries is rejected rather than executed.
"""

from __future__ import annotations

import logging
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from saip_bench.errors import DataFormatError
from saip_bench.synth.attributes import PETA_ATTRIBUTES
from saip_bench.tasks.attribute.data.common import (
    AttributeSet,
    binary_labels,
    check_partition,
    verify_images,
)

log = logging.getLogger(__name__)

SPLIT_FILE = "dataset_zs_run0.pkl"
IMAGE_DIR = "images"
REQUIRED_KEYS = ("image_name", "label", "attr_name", "partition")

#: The 35 evaluated PETA attributes, in Rethinking_of_PAR's grouped order (head, upper, lower, feet, carrying,
#: age, gender), which is the column order of the split files.
ATTRIBUTES: tuple[str, ...] = PETA_ATTRIBUTES


class _AttrDict(dict):
    """Stands in for ``easydict.EasyDict`` while unpickling (a dict whose ``__dict__`` mirrors the keys)."""


# (module, name) pairs a split file may reference; numpy moved its internals to numpy._core in 2.0.
_ALLOWED = {
    ("builtins", "dict"), ("builtins", "list"), ("builtins", "tuple"), ("builtins", "set"),
    ("builtins", "object"), ("collections", "OrderedDict"), ("copyreg", "_reconstructor"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"), ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
}  # fmt: skip


class _SplitUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if module == "easydict" and name == "EasyDict":
            return _AttrDict
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"references {module}.{name}, which a split file may not contain")
        if module.startswith("numpy.core"):
            module = "numpy._core" + module[len("numpy.core") :]  # avoid numpy 2's deprecation shim
        return super().find_class(module, name)


def read_split_file(path: Path) -> dict[str, Any]:
    """Unpickle a split file with the restricted unpickler; any failure names the file."""
    if not path.is_file():
        raise DataFormatError(path, "split file does not exist")
    try:
        with open(path, "rb") as handle:
            data = _SplitUnpickler(handle, encoding="latin1").load()
    except Exception as err:  # truncated, not a pickle, or a forbidden global
        raise DataFormatError(path, f"not a readable split pickle ({type(err).__name__}: {err})") from None
    if not isinstance(data, dict):
        raise DataFormatError(path, f"expected a dict, got {type(data).__name__}")
    missing = [key for key in REQUIRED_KEYS if key not in data]
    if missing:
        raise DataFormatError(path, f"missing key {missing[0]!r} (has: {', '.join(map(str, data))})")
    return data


def _first_run(value: Any) -> Any:
    """Multi-run files store a list with one entry per run; zero-shot files store the value itself."""
    if isinstance(value, (list, tuple)) and value and isinstance(value[0], (list, tuple, np.ndarray)):
        return value[0]
    return value


def _index(path: Path, name: str, value: Any) -> np.ndarray:
    try:
        index = np.asarray(_first_run(value))
    except Exception:
        index = np.asarray([None])
    if index.ndim != 1 or (index.size and index.dtype.kind not in "iu"):
        raise DataFormatError(path, f"partition[{name!r}] must be a list of integer indices")
    return index.astype(np.int64)


def load(root: str | Path) -> AttributeSet:
    """Read ``root/dataset_zs_run0.pkl``; images are expected in ``root/images/`` (not opened here).

    Raises:
        DataFormatError: a missing key or split, label shape / values wrong, overlapping train and test.
    """
    root = Path(root)
    path = root / SPLIT_FILE
    data = read_split_file(path)
    names = [str(name) for name in data["image_name"]]
    attr_names = [str(name) for name in data["attr_name"]]
    labels = binary_labels(path, "label", data["label"], (len(names), len(attr_names)))
    partition_raw = data["partition"]
    if not isinstance(partition_raw, dict):
        raise DataFormatError(path, "'partition' must be a dict of split name -> indices")
    partition: dict[str, np.ndarray] = {}
    for split in ("train", "val", "test"):
        if split not in partition_raw:
            raise DataFormatError(path, f"partition has no {split!r} split")
        partition[split] = _index(path, split, partition_raw[split])
    partition["trainval"] = (
        _index(path, "trainval", partition_raw["trainval"])
        if "trainval" in partition_raw
        else np.concatenate([partition["train"], partition["val"]])
    )
    check_partition(path, partition, len(names))
    # Training weights are the split's own positive ratios (as the reference computes them from the labels);
    # the stored weight_trainval only has to agree in length.
    if "weight_trainval" in data:
        size = np.asarray(_first_run(data["weight_trainval"]), dtype=object).size
        if size != len(attr_names):
            raise DataFormatError(path, f"weight_trainval has {size} entries for {len(attr_names)} labels")
    return AttributeSet.from_files(
        "peta_zs", root, source=path, image_dir=IMAGE_DIR, names=names, attr_names=attr_names,
        labels=labels, partition=partition,
    )  # fmt: skip


def check(root: str | Path) -> dict[str, int]:
    """Validate a PETA-zs folder: the split file and every listed image's header.

    Returns:
        ``{"train", "val", "test", "trainval", "attributes", "images"}`` counts.
    """
    data = load(root)
    verify_images(data.image_paths, data.root / SPLIT_FILE)
    counts = data.counts()
    counts["images"] = len(data.image_paths)
    log.debug("PETA-zs at %s: %s", root, counts)
    return counts
