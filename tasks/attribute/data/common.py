"""What both attribute readers share: the loaded record, label and image validation, split checks."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from saip_bench.data_check import check_image_headers
from saip_bench.errors import DataFormatError


@dataclass
class AttributeSet:
    """One attribute dataset as loaded from disk.

    Attributes:
        dataset: registry name (``"pa100k"``, ``"peta_zs"``).
        root: the dataset folder.
        attr_names: the evaluated attributes, in label-column order.
        image_paths: every image, absolute; row ``i`` of ``labels`` belongs to ``image_paths[i]``.
        labels: ``(N, A)`` uint8, 1 = present, 0 = absent.
        partition: split name (``train``, ``val``, ``trainval``, ``test``) -> int64 row indices.
        pos_ratio: ``(A,)`` float32 positive ratio of the training split (``trainval``), the BCE weights.
    """

    dataset: str
    root: Path
    attr_names: tuple[str, ...]
    image_paths: list[Path]
    labels: np.ndarray
    partition: dict[str, np.ndarray]
    pos_ratio: np.ndarray

    @classmethod
    def from_files(
        cls,
        dataset: str,
        root: Path,
        *,
        source: Path,
        image_dir: str,
        names: list[str],
        attr_names: list[str] | tuple[str, ...],
        labels: np.ndarray,
        partition: dict[str, np.ndarray],
    ) -> AttributeSet:
        """The set read from annotation file ``source``: checks every image name is a plain file name of an
        image in ``root/image_dir`` (the header only) and takes the BCE weights from the ``trainval`` split's
        own labels."""
        for name in names:
            if not name or Path(name).is_absolute() or ".." in Path(name).parts:
                raise DataFormatError(source, f"image name {name!r} is not a plain file name")
        image_paths = [root / image_dir / name for name in names]
        # headers only (about 30 us an image): a run stops on a bad file before its first step
        check_image_headers(image_paths, listed_in=source)
        return cls(
            dataset=dataset,
            root=root,
            attr_names=tuple(attr_names),
            image_paths=image_paths,
            labels=labels,
            partition=partition,
            pos_ratio=(labels[partition["trainval"]] == 1).mean(axis=0).astype(np.float32),
        )

    @property
    def num_attrs(self) -> int:
        return len(self.attr_names)

    def split(self, name: str) -> tuple[list[Path], np.ndarray]:
        """Image paths and ``(n, A)`` labels of one split."""
        if name not in self.partition:
            raise KeyError(f"{self.dataset} has no split {name!r}; splits: {', '.join(self.partition)}")
        index = self.partition[name]
        return [self.image_paths[i] for i in index], self.labels[index]

    def counts(self) -> dict[str, int]:
        """Images per split and the number of attributes, as ``check`` reports them."""
        counts = {name: int(len(index)) for name, index in self.partition.items()}
        counts["attributes"] = self.num_attrs
        return counts


def binary_labels(path: Path, what: str, array: object, shape: tuple[int | None, int | None]) -> np.ndarray:
    """Validate a 0/1 label matrix read from ``path`` and return it as uint8.

    ``shape`` gives the expected ``(rows, columns)``; None means "any".
    """
    try:
        labels = np.asarray(array)
    except Exception as err:  # ragged nested lists and the like
        raise DataFormatError(path, f"{what} is not a numeric matrix ({err})") from None
    if labels.ndim != 2 or labels.dtype.kind not in "biuf":
        raise DataFormatError(path, f"{what} must be a numeric 2-D matrix, got {labels.dtype} {labels.shape}")
    for axis, expected in enumerate(shape):
        if expected is not None and labels.shape[axis] != expected:
            raise DataFormatError(
                path, f"{what} has shape {labels.shape}, expected {expected} along axis {axis}"
            )
    bad = ~np.isin(labels, (0, 1))
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise DataFormatError(path, f"{what}[{row}, {col}] = {labels[row, col]}; labels must be 0 or 1")
    return labels.astype(np.uint8)


def verify_images(paths: list[Path], listed_in: Path) -> None:
    """Raise :class:`DataFormatError` for the first listed image that is missing or not an image.

    Only the header is parsed (cheap even for 100k files); a file truncated later is caught when it is
    decoded, by :class:`saip_bench.tasks.attribute.images.AttributeImages`.
    """
    for path in paths:
        if not path.is_file():
            raise DataFormatError(path, f"image listed in {listed_in.name} does not exist")
        try:
            with Image.open(path) as image:
                image.verify()
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
            raise DataFormatError(path, f"not a readable image ({err})") from None


def check_partition(path: Path, partition: dict[str, np.ndarray], num_images: int) -> None:
    """Indices in range, no split empty, and no image both trained on and tested on."""
    for name, index in partition.items():
        if index.size == 0:
            raise DataFormatError(path, f"split {name!r} is empty")
        if index.min() < 0 or index.max() >= num_images:
            raise DataFormatError(path, f"split {name!r} has indices outside 0..{num_images - 1}")
    if "trainval" in partition and "test" in partition:
        overlap = np.intersect1d(partition["trainval"], partition["test"])
        if overlap.size:
            raise DataFormatError(
                path, f"{overlap.size} images are in both trainval and test (e.g. {overlap[0]})"
            )
