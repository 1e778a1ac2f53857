"""The dataset registry: every declared dataset's code imports, its recipe exists, listing it stays light."""

from __future__ import annotations

import importlib.util
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

import saip_bench.tasks.reid
from saip_bench.dataset_spec import (
    DatasetSpec,
    SynthOptions,
    dataset_folder,
    read_declarations,
    resolve_ref,
    task_datasets,
)
from saip_bench.datasets import DATASETS, EVAL_DATASETS, LUP, REGISTERED, synth_formats
from saip_bench.errors import ConfigError, SaipError
from saip_bench.evaluate.adapter import PROTOCOL_NAMES

SPECS = [spec for _, spec in DATASETS.items()]


def test_twelve_datasets_in_the_papers_order_one_line_each() -> None:
    assert len(REGISTERED) == len(DATASETS) == 12
    assert list(EVAL_DATASETS) == DATASETS.names()
    assert DATASETS.names()[:2] == ["market1501", "msmt17"] and DATASETS.names()[-1] == "fashionpedia"
    # Each line names its declaration in its own task folder's datasets.yaml.
    for entry, spec in zip(REGISTERED, SPECS, strict=True):
        assert entry == f"{spec.task}:{spec.name}" and spec.name in task_datasets(spec.task)
    assert "lup" in synth_formats() and "lup" not in DATASETS


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_every_dataset_has_code_that_imports_and_a_shipped_recipe(spec: DatasetSpec) -> None:
    for ref in (spec.loader, spec.checker, spec.writer):
        assert ref is not None and callable(resolve_ref(ref)), ref
    # Writers follow one convention: write_synth(out, options) -- no unused keyword to delete.
    assert list(inspect.signature(resolve_ref(spec.writer)).parameters) == ["out", "options"]
    assert spec.recipe_path().is_file()
    assert spec.protocols and set(spec.protocols) <= set(PROTOCOL_NAMES)
    assert spec.default_protocol == spec.protocols[0] and spec.best in ("max", "min")
    module, _, cls = spec.adapter.partition(":")
    assert importlib.util.find_spec(module) is not None and cls  # importing it would pull in torch/mm
    assert spec.primary_metric and spec.title and spec.folder


def test_lup_is_a_synth_format_only() -> None:
    assert callable(resolve_ref(LUP.writer)) and callable(resolve_ref(LUP.checker))
    with pytest.raises(ConfigError, match="not an evaluation dataset"):
        _ = LUP.default_protocol
    with pytest.raises(ConfigError, match="has no loader"):
        LUP.load("anywhere")
    with pytest.raises(ConfigError, match="no evaluation recipe"):
        LUP.recipe_path()


def test_a_miss_lists_the_names_and_a_bad_reference_is_one_error() -> None:
    with pytest.raises(SaipError, match="valid names: .*market1501"):
        DATASETS.get("market")
    with pytest.raises(ConfigError, match="expected 'package.module:attribute'"):
        resolve_ref("saip_bench.datasets")
    assert resolve_ref("saip_bench.tasks.pose.data.coco_keypoints:FORMAT.load").__name__ == "load"


def test_write_synth_takes_options_or_their_fields(tmp_path: Path) -> None:
    calls: list[tuple[Path, SynthOptions]] = []
    module = type(sys)("fake_writer_module")
    module.write = lambda out, options: calls.append((out, options))  # type: ignore[attr-defined]
    sys.modules[module.__name__] = module
    try:
        spec = DatasetSpec("fake", "Fake", "reid", "Fake", "mAP", writer="fake_writer_module:write")
        spec.write_synth(str(tmp_path), ids=3, seed=5)
        spec.write_synth(tmp_path, SynthOptions(images=7))
        assert calls == [
            (tmp_path, SynthOptions(ids=3, images=160, seed=5)),
            (tmp_path, SynthOptions(images=7)),
        ]
        with pytest.raises(TypeError, match="not both"):
            spec.write_synth(tmp_path, SynthOptions(), ids=2)
    finally:
        del sys.modules[module.__name__]


def test_a_bad_declaration_names_the_file_and_the_dataset(tmp_path: Path) -> None:
    path = tmp_path / "datasets.yaml"
    path.write_text("toy:\n  title: Toy\n  folder: Toy\n  primary_metric: AP\n  loader: .data:load\n")
    [toy] = read_declarations(path, "pose", "saip_bench.tasks.pose").values()
    assert (toy.name, toy.task, toy.loader) == ("toy", "pose", "saip_bench.tasks.pose.data:load")
    path.write_text("toy:\n  title: Toy\n  folder: Toy\n  primary_metric: AP\n  colour: red\n")
    with pytest.raises(ConfigError, match=r"datasets.yaml: toy: unknown key\(s\) colour; valid: "):
        read_declarations(path, "pose", "saip_bench.tasks.pose")
    path.write_text("toy:\n  title: Toy\n")
    with pytest.raises(ConfigError, match="datasets.yaml: toy: .*missing"):
        read_declarations(path, "pose", "saip_bench.tasks.pose")
    with pytest.raises(ConfigError, match="unknown task 'juggling'"):
        task_datasets("juggling")


def test_dataset_folder_accepts_the_folder_or_its_parent(tmp_path: Path) -> None:
    (tmp_path / "LIP").mkdir()
    (tmp_path / "LIP" / "train_id.txt").write_text("")
    assert dataset_folder(tmp_path, "LIP", "train_id.txt") == tmp_path / "LIP"
    assert dataset_folder(tmp_path / "LIP", "LIP", "train_id.txt") == tmp_path / "LIP"


def test_listing_the_datasets_imports_no_numpy_pil_or_torch() -> None:
    code = (
        "import sys; import saip_bench.datasets as d; d.DATASETS.get('lip').recipe_path(); "
        "heavy = [m for m in ('numpy', 'PIL', 'torch', 'scipy') if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_a_recipe_may_live_in_its_task_folder() -> None:
    from dataclasses import replace

    spec = replace(DATASETS.get("market1501"), recipe="./datasets.yaml")  # any file of the task folder
    assert spec.recipe_path() == Path(saip_bench.tasks.reid.__file__).parent / "datasets.yaml"
    with pytest.raises(ConfigError, match="no such recipe file"):
        replace(spec, recipe="./recipes/missing.yaml").recipe_path()
