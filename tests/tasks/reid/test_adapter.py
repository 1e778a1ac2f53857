"""The re-ID task: frozen retrieval, fine-tuning that learns, recipe errors, seeding and unreadable images."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch
from omegaconf import OmegaConf
from torch.utils.data import DataLoader

from saip_bench.backbones import load_backbone
from saip_bench.errors import ConfigError, DataFormatError
from saip_bench.evaluate.adapter import EvalRequest, TaskAdapter
from saip_bench.evaluate.images import ImageReadError
from saip_bench.evaluate.protocols import load_recipe
from saip_bench.evaluate.task import Task
from saip_bench.tasks.reid.adapter import ReidAdapter
from saip_bench.tasks.reid.dataset import ReidImages, build_transforms

SIZE = (64, 32)
ARCH = "test_vit"  # timm's tiny test ViT (64-d, patch 16): the whole fine-tuning test runs in seconds


def _recipe(**train: Any) -> dict[str, Any]:
    return {
        "img_size": list(SIZE),
        "seed": 0,
        "data": {"workers": 0},
        "eval": {"batch_size": 64},
        "sampler": {"p": 4, "k": 4},
        "augment": {"pad": 2, "erasing": 0.0},
        "train": {
            "epochs": 1,
            "optimizer": "adamw",
            "lr": 1e-3,
            "weight_decay": 1e-4,
            "warmup_epochs": 1,
            **train,
        },
    }


def _resolve(tmp_path: Path, recipe: dict[str, Any], protocol: str) -> dict[str, Any]:
    """``recipe`` (its ``train`` under the protocol) written as a recipe file and resolved as dispatch does:
    over the task's defaults file, unknown keys refused."""
    body = {k: v for k, v in recipe.items() if k != "train"}
    body["protocols"] = {protocol: {"train": recipe["train"]} if protocol == "finetune" else {}}
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "recipe.yaml"
    OmegaConf.save(OmegaConf.create(body), path)
    return load_recipe(path, protocol, "full", task="reid")


def _request(root: Path, run_dir: Path, protocol: str, recipe: dict[str, Any], dataset: str = "market1501"):
    return EvalRequest(
        task="reid",
        dataset=dataset,
        data_dir=root,
        protocol=protocol,
        budget="full",
        recipe=_resolve(run_dir / "recipe", recipe, protocol),
        img_size=SIZE,
        run_dir=run_dir,
        device="cpu",
        seed=0,
        primary_metric="mAP",
    )


def test_is_a_task_on_the_template() -> None:
    adapter = ReidAdapter()
    assert isinstance(adapter, Task) and isinstance(adapter, TaskAdapter)
    assert adapter.task == "reid" and adapter.protocols == ("finetune", "frozen")


def test_finetuning_beats_the_frozen_random_init(synth_market: Path, tmp_path: Path) -> None:
    adapter = ReidAdapter()
    frozen = adapter.run(
        _request(synth_market, tmp_path / "f", "frozen", _recipe()),
        load_backbone(f"random:{ARCH}", img_size=SIZE),
    )
    tuned = adapter.run(
        _request(synth_market, tmp_path / "t", "finetune", _recipe(epochs=20)),
        load_backbone(f"random:{ARCH}", img_size=SIZE),
    )
    assert set(tuned.metrics) == {"mAP", "R1", "R5", "R10"} and tuned.primary_metric == "mAP"
    assert tuned.extra["selected_epoch"] == 20 and frozen.extra["query"] == tuned.extra["query"] > 0
    losses = [h["loss"] for h in json.loads((tmp_path / "t" / "history.json").read_text())]
    assert losses[-1] < 0.8 * losses[0]
    assert tuned.metrics["mAP"] > frozen.metrics["mAP"] + 5.0, (frozen.metrics, tuned.metrics)


def test_frozen_and_finetune_on_msmt17_with_cosine_and_rerank(synth_msmt: Path, tmp_path: Path) -> None:
    recipe = {
        **_recipe(max_steps_per_epoch=2),
        "eval": {"batch_size": 32, "distance": "cosine", "rerank": True},
    }
    adapter = ReidAdapter()
    for protocol in ("frozen", "finetune"):
        result = adapter.run(
            _request(synth_msmt, tmp_path / protocol, protocol, recipe, "msmt17"),
            load_backbone(f"random:{ARCH}", img_size=SIZE),
        )
        assert 0.0 < result.metrics["mAP"] <= 100.0 and result.metrics["R1"] <= result.metrics["R10"]
    assert (tmp_path / "finetune" / "last.pt").is_file()


def test_a_run_is_seeded_and_leaves_the_callers_rng_alone(synth_msmt: Path, tmp_path: Path) -> None:
    """The template seeds model building and training; the old adapter reset the global RNG itself."""
    recipe = _recipe(max_steps_per_epoch=2)
    results = []
    for run in ("a", "b"):
        torch.manual_seed(1234 if run == "a" else 99)
        before = torch.get_rng_state()
        result = ReidAdapter().run(
            _request(synth_msmt, tmp_path / run, "finetune", recipe, "msmt17"),
            load_backbone(f"random:{ARCH}", img_size=SIZE),
        )
        assert torch.equal(torch.get_rng_state(), before)
        results.append(result.metrics)
    assert results[0] == results[1]


def test_unknown_recipe_keys_are_config_errors_naming_the_recipe(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"recipe\.yaml: unknown key 'sampler\.kk'"):
        _resolve(tmp_path / "a", {**_recipe(), "sampler": {"p": 4, "kk": 4}}, "finetune")
    with pytest.raises(ConfigError, match=r"recipe\.yaml: unknown key 'extra'"):
        _resolve(tmp_path / "b", {**_recipe(), "extra": 1}, "frozen")
    with pytest.raises(ConfigError, match="epochz"):
        _resolve(tmp_path / "c", _recipe(epochz=3), "finetune")


@pytest.mark.parametrize(
    ("section", "match"), [({"distance": "manhattan"}, "eval.distance"), ({"feat": "post"}, "eval.feat")]
)
def test_bad_eval_choices_are_refused_before_reading_data(tmp_path: Path, section: dict, match: str) -> None:
    recipe = {**_recipe(), "eval": section}
    request = _request(tmp_path / "no-such-dataset", tmp_path / "run", "frozen", recipe)
    with pytest.raises(ConfigError, match=match):
        ReidAdapter().run(request, load_backbone(f"random:{ARCH}", img_size=SIZE))


def test_finetune_without_a_train_section_is_refused(tmp_path: Path) -> None:
    """The template's request check (the old adapter skipped it and failed later, inside the engine)."""
    request = _request(tmp_path / "no-such-dataset", tmp_path / "run", "finetune", _recipe())
    untrained = {k: v for k, v in request.recipe.items() if k != "train"}
    with pytest.raises(ConfigError, match="needs a 'train' section"):
        ReidAdapter().run(replace(request, recipe=untrained), load_backbone(f"random:{ARCH}", img_size=SIZE))


def test_frozen_model_has_no_classifier_and_reads_eval_feat(synth_msmt: Path, tmp_path: Path) -> None:
    adapter = ReidAdapter()
    backbone = load_backbone(f"random:{ARCH}", img_size=SIZE)
    request = _request(synth_msmt, tmp_path, "frozen", {**_recipe(), "eval": {"feat": "pre"}}, "msmt17")
    data = adapter.build_data(request)
    model = adapter.build_model(request, backbone, data)
    assert model.classifier is None and model.feat == "pre" and adapter.backbone_of(model) is backbone
    finetune = _request(synth_msmt, tmp_path, "finetune", _recipe(), "msmt17")
    tuned = adapter.build_model(finetune, backbone, data)
    assert tuned.classifier.out_features == data.num_ids and tuned.feat == "bn"


def test_undecodable_image_is_one_line_naming_the_file_even_from_a_worker(tmp_path: Path) -> None:
    bad = tmp_path / "0001_c1s1_000001_01.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 64)  # a JPEG header and nothing decodable
    data = ReidImages([(bad, 1, 0)], build_transforms(SIZE, train=False))
    for workers in (0, 1):
        with pytest.raises(DataFormatError) as err:
            next(iter(DataLoader(data, batch_size=1, num_workers=workers)))
        assert isinstance(err.value, ImageReadError)
        message = str(err.value)
        assert message.startswith(str(bad)) and "cannot decode image" in message and "\n" not in message
    missing = ReidImages([(tmp_path / "gone.jpg", 1, 0)], build_transforms(SIZE, train=False))
    with pytest.raises(DataFormatError, match="gone.jpg: image file is missing"):
        missing[0]
