"""The 12 evaluation datasets (and the LUP pretraining crops): names, folders, tasks, sizes, metrics.

Each dataset's code lives beside its task's loader, in the module named by ``DatasetInfo.module``. That module
provides the format's three entry points:

- ``check(root: Path) -> dict[str, int]``: validate the dataset folder ``root`` against the real format and
  return the counts found (e.g. ``{"train": 12936, "query": 3368, "gallery": 15913}``); raise
  :class:`saip_bench.errors.DataFormatError` naming the first bad file.
- ``write_synth(out: Path, *, ids: int, images: int, seed: int) -> None``: write a synthetic dataset in
  exactly the real on-disk format into the folder ``out``.
- its loader(s), used by the task adapter.

A dataset whose module does not exist yet is "not yet supported": later task issues add the module at the
path named here and nothing else has to change.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from saip_bench.errors import ConfigError
from saip_bench.registry import Registry


@dataclass(frozen=True)
class DatasetInfo:
    """Static facts about one dataset."""

    name: str  # CLI name, e.g. "market1501"
    title: str  # as papers print it, e.g. "Market-1501"
    task: str  # task adapter name, e.g. "reid"
    folder: str  # usual folder name under a data root
    metric: str  # primary metric as reported in SAIP.md
    official_counts: dict[str, int] = field(default_factory=dict)
    module: str | None = None  # module providing check / write_synth / loaders
    aliases: tuple[str, ...] = ()  # other folder names users have (e.g. torchreid's layout)

    def load(self, root: str | Path, *args: Any, **kwargs: Any) -> Any:
        """Read the dataset at ``root`` with its format module's ``load`` (what the task's loader returns)."""
        module = self.load_module()
        if module is None or not hasattr(module, "load"):
            raise ConfigError(f"{self.title} has no loader yet")
        return module.load(root, *args, **kwargs)

    def load_module(self) -> ModuleType | None:
        """The dataset's format module, or None if no task issue has added it yet."""
        if self.module is None:
            return None
        try:
            return importlib.import_module(self.module)
        except ModuleNotFoundError as err:
            # Only "this dataset's module does not exist yet" means unsupported; a broken import inside
            # an existing module is a bug and must surface.
            if err.name and self.module.startswith(err.name):
                return None
            raise


DATASETS: Registry[DatasetInfo] = Registry("dataset")


def _add(info: DatasetInfo) -> None:
    DATASETS.add(info.name, info)


_T = "saip_bench.tasks"
_add(
    DatasetInfo(
        "market1501",
        "Market-1501",
        "reid",
        "Market-1501-v15.09.15",
        "mAP",
        {"train": 12936, "train_ids": 751, "query": 3368, "gallery": 15913},
        f"{_T}.reid.data.market1501",
        aliases=("market1501/Market-1501-v15.09.15", "Market-1501"),
    )
)
_add(
    DatasetInfo(
        "msmt17",
        "MSMT17",
        "reid",
        "MSMT17_V1",
        "mAP",
        {"train": 32621, "train_ids": 1041, "query": 11659, "gallery": 82161},
        f"{_T}.reid.data.msmt17",
        aliases=("msmt17/MSMT17_V1",),
    )
)
_add(
    DatasetInfo(
        "cuhk_pedes",
        "CUHK-PEDES",
        "text_retrieval",
        "CUHK-PEDES",
        "R1",
        {"images": 40206, "ids": 13003},
        f"{_T}.text_retrieval.data.cuhk_pedes",
    )
)
_add(
    DatasetInfo(
        "icfg_pedes",
        "ICFG-PEDES",
        "text_retrieval",
        "ICFG-PEDES",
        "R1",
        {},
        f"{_T}.text_retrieval.data.icfg_pedes",
    )
)
_add(
    DatasetInfo(
        "pa100k",
        "PA-100K",
        "attribute",
        "PA-100K",
        "mA",
        {"train": 80000, "val": 10000, "test": 10000, "attributes": 26},
        f"{_T}.attribute.data.pa100k",
        aliases=("pa100k",),
    )
)
_add(
    DatasetInfo(
        "peta_zs",
        "PETA-zs",
        "attribute",
        "PETA",
        "mA",
        {"images": 19000, "attributes": 35},
        f"{_T}.attribute.data.peta_zs",
        aliases=("peta",),
    )
)
_add(
    DatasetInfo(
        "coco_keypoints", "COCO-Keypoints", "pose", "coco", "AP", {}, f"{_T}.pose.data.coco_keypoints"
    )
)
_add(
    DatasetInfo(
        "coco_wholebody",
        "COCO-WholeBody",
        "pose",
        "coco_wholebody",
        "AP",
        {},
        f"{_T}.pose.data.coco_wholebody",
    )
)
_add(
    DatasetInfo(
        "lip",
        "LIP",
        "parsing",
        "LIP",
        "mIoU",
        {"train": 30462, "val": 10000, "classes": 20},
        f"{_T}.parsing.data.lip",
    )
)
_add(
    DatasetInfo(
        "cihp",
        "CIHP",
        "parsing",
        "instance-level_human_parsing",
        "mIoU",
        {"train": 28280, "val": 5000, "classes": 20},
        f"{_T}.parsing.data.cihp",
        aliases=("CIHP",),
    )
)
_add(
    DatasetInfo(
        "crowdhuman",
        "CrowdHuman",
        "detection",
        "CrowdHuman",
        "AP",
        {"train": 15000, "val": 4370},
        f"{_T}.detection.data.crowdhuman",
    )
)
_add(
    DatasetInfo(
        "fashionpedia",
        "Fashionpedia",
        "fashion",
        "Fashionpedia",
        "AP",
        {"categories": 46, "attributes": 294},
        f"{_T}.fashion.data.fashionpedia",
    )
)

#: The pretraining crops (LUPerson style): not one of the 12 evaluation datasets, but a synth format.
LUP = DatasetInfo(
    "lup", "LUPerson crops", "pretrain", "LUP", "-", {"images": 1_000_000}, "saip_bench.pretrain.data.lup"
)

EVAL_DATASETS: tuple[str, ...] = tuple(DATASETS.names())


def synth_formats() -> Registry[DatasetInfo]:
    """Every format ``saip data synth`` knows by name: the 12 datasets plus ``lup``."""
    formats: Registry[DatasetInfo] = Registry("synthetic format")
    for name, info in DATASETS.items():
        formats.add(name, info)
    formats.add(LUP.name, LUP)
    return formats
