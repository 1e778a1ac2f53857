"""The dataset registry: the 12 evaluation datasets (and the LUP pretraining crops), one line each.

Every fact about a dataset (title, task, folder, counts, primary metric, protocols, recipe, adapter, and
where its loader, check and synthetic writer live) is declared once, as a
:class:`~saip_bench.dataset_spec.DatasetSpec` in its task folder's ``datasets.yaml``; :data:`REGISTERED`
below names each declaration with one line, in the paper's order. Everything else reads
the registry: ``DATASETS.get(name).load(root, *args)`` (tasks), ``.check(root)`` (``saip data check``),
``.write_synth(out, options)`` (``saip data synth``), ``.recipe_path()`` / ``.load_adapter()`` (dispatch),
``.title`` / ``.primary_metric`` (reports). The protocol view
(:data:`saip_bench.evaluate.protocols.PROTOCOLS`) is derived from it.

Adding a dataset: declare its spec in its task folder and add its line to :data:`REGISTERED`.
"""

from __future__ import annotations

from pathlib import Path

from saip_bench.dataset_spec import DatasetSpec, SynthOptions, task_datasets
from saip_bench.errors import ConfigError
from saip_bench.registry import Registry

__all__ = ["DATASETS", "EVAL_DATASETS", "LUP", "REGISTERED", "DatasetSpec", "SynthOptions", "synth_formats"]

#: ``"task:name"`` of every evaluation dataset, one line each, in the paper's order; the facts are declared
#: in ``tasks/<task>/datasets.yaml``.
REGISTERED: tuple[str, ...] = (
    "reid:market1501",
    "reid:msmt17",
    "text_retrieval:cuhk_pedes",
    "text_retrieval:icfg_pedes",
    "attribute:pa100k",
    "attribute:peta_zs",
    "pose:coco_keypoints",
    "pose:coco_wholebody",
    "parsing:lip",
    "parsing:cihp",
    "detection:crowdhuman",
    "fashion:fashionpedia",
)


def _register(entries: tuple[str, ...]) -> Registry[DatasetSpec]:
    registry: Registry[DatasetSpec] = Registry("dataset")
    for entry in entries:
        task, _, name = entry.partition(":")
        declared = task_datasets(task)
        if name not in declared:
            raise ConfigError(f"{entry}: tasks/{task}/datasets.yaml declares no {name!r}")
        registry.add(name, declared[name])
    return registry


DATASETS: Registry[DatasetSpec] = _register(REGISTERED)


def write_lup(out: Path, options: SynthOptions) -> None:
    """The LUP crops' writer in the registry's convention (``pretrain.data.lup`` keeps its keywords)."""
    from saip_bench.pretrain.data.lup import write_synth

    write_synth(out, ids=options.ids, images=options.images, seed=options.seed)


#: The pretraining crops (LUPerson style): not one of the 12 evaluation datasets, but a synth format.
LUP = DatasetSpec(
    name="lup",
    title="LUPerson crops",
    task="pretrain",
    folder="LUP",
    primary_metric="-",
    official_counts={"images": 1_000_000},
    checker="saip_bench.pretrain.data.lup:check",
    writer="saip_bench.datasets:write_lup",
)

EVAL_DATASETS: tuple[str, ...] = tuple(DATASETS.names())


def synth_formats() -> Registry[DatasetSpec]:
    """Every format ``saip data synth`` knows by name: the 12 datasets plus ``lup``."""
    formats: Registry[DatasetSpec] = Registry("synthetic format")
    for name, spec in DATASETS.items():
        formats.add(name, spec)
    formats.add(LUP.name, LUP)
    return formats
