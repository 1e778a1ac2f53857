"""The re-ID adapter: frozen retrieval, fine-tuning that learns, recipe errors and unreadable images."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from torch.utils.data import DataLoader

from saip_bench.backbones import load_backbone
from saip_bench.errors import ConfigError, DataFormatError
from saip_bench.evaluate.adapter import EvalRequest, TaskAdapter
from saip_bench.evaluate.images import ImageReadError
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


def _request(root: Path, run_dir: Path, protocol: str, recipe: dict[str, Any], dataset: str = "market1501"):
    return EvalRequest(
        task="reid",
        dataset=dataset,
        data_dir=root,
        protocol=protocol,
        budget="full",
        recipe=recipe,
        img_size=SIZE,
        run_dir=run_dir,
        device="cpu",
        seed=0,
    )


def test_is_a_task_adapter() -> None:
    assert isinstance(ReidAdapter(), TaskAdapter)


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
    losses = [h["loss"] for h in tuned.extra["history"]]
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


def test_unknown_recipe_keys_are_config_errors(synth_msmt: Path, tmp_path: Path) -> None:
    backbone = load_backbone(f"random:{ARCH}", img_size=SIZE)
    bad = {**_recipe(), "sampler": {"p": 4, "kk": 4}}
    with pytest.raises(ConfigError, match="'sampler': unknown key"):
        ReidAdapter().run(_request(synth_msmt, tmp_path, "finetune", bad, "msmt17"), backbone)
    with pytest.raises(ConfigError, match="unknown key"):
        ReidAdapter().run(_request(synth_msmt, tmp_path, "finetune", _recipe(epochz=3), "msmt17"), backbone)


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
