"""The scale probe on real tasks: one training, the same model evaluated at every scale.

Dispatch's bookkeeping (records, skips, the per-scale option) is in test_dispatch.py with a fake adapter; here
the task template's side: the fit runs once, the backbone is resized for each probe scale and put back, and
evaluating the trained model again at its own size reproduces the protocol's metrics, so a probe record at
x1 means what the plain evaluation means.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from saip_bench import engine
from saip_bench.backbones import load_backbone
from saip_bench.datasets import DATASETS
from saip_bench.evaluate import dispatch
from saip_bench.evaluate.adapter import EvalRequest
from saip_bench.evaluate.protocols import load_recipe
from saip_bench.results import open_workspace_store

SIZE = (64, 32)
BACKBONE = "random:saip_vit_tiny_patch16"
FAST = {
    "pa100k": ("data.workers=0", "train.epochs=1", "train.max_steps_per_epoch=2", "linear.steps=20"),
    "market1501": ("data.workers=0",),
    "lip": ("data.workers=0", "train.epochs=1", "train.max_steps_per_epoch=2", "eval.flip=false"),
    "coco_keypoints": ("data.workers=0", "train.epochs=1", "train.max_steps_per_epoch=2"),
}


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("probe_data")
    sizes = (("pa100k", 10, 40), ("market1501", 6, 36), ("lip", 4, 16), ("coco_keypoints", 1, 16))
    for name, ids, images in sizes:
        spec = DATASETS.get(name)
        spec.write_synth(root / spec.folder, ids=ids, images=images, seed=0)
    return root


@pytest.fixture
def fits(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the engine's fits (each one training run)."""
    calls: list[int] = []
    real = engine.fit

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "fit", counting)
    return calls


def _evaluate(data_root: Path, ws: Path, dataset: str, protocol: str, **kw):
    spec = DATASETS.get(dataset)
    return dispatch.evaluate(
        task=spec.task, dataset=dataset, backbone=BACKBONE, data_root=data_root, workspace=ws,
        protocol=protocol, budget="smoke", device="cpu",
        overrides=[f"img_size=[{SIZE[0]},{SIZE[1]}]", *FAST[dataset]], **kw,
    )  # fmt: skip


def test_a_finetune_probe_trains_once_and_records_every_scale(
    data_root: Path, tmp_path: Path, fits: list[int], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="saip_bench")
    ws = tmp_path / "ws"
    outs = _evaluate(data_root, ws, "pa100k", "finetune", scales=[0.5, 1.0, 1.5])
    assert [o.status for o in outs] == ["done"] * 3 and len(fits) == 1
    records = sorted(open_workspace_store(ws).query(), key=lambda r: r.scale)
    assert [(r.scale, r.train_scale) for r in records] == [(0.5, 1.0), (1.0, 1.0), (1.5, 1.0)]
    assert len({r.train_run for r in records}) == 1 and len({r.duration_s for r in records}) == 1
    assert all(0.0 <= r.primary_value <= 100.0 and r.primary_metric == "mA" for r in records)
    log = (ws / records[0].train_run / "train.log").read_text()  # the run's log has the probe's lines
    assert "x0.5 (32, 16) (model trained at (64, 32)): mA" in log and "x1.5 (96, 48)" in log

    outs = _evaluate(data_root, ws, "pa100k", "finetune", scales=[0.5, 1.5], train_per_scale=True)
    assert [o.status for o in outs] == ["done", "done"] and len(fits) == 3  # one fit per scale
    per_scale = [r for r in open_workspace_store(ws).query() if r.train_scale == r.scale != 1.0]
    assert sorted(r.scale for r in per_scale) == [0.5, 1.5] and len({r.train_run for r in per_scale}) == 2


@pytest.mark.parametrize(
    ("dataset", "protocol"),
    [
        ("pa100k", "linear"),
        ("pa100k", "finetune"),
        ("market1501", "frozen"),
        ("lip", "linear"),
        ("coco_keypoints", "linear"),
    ],
)
def test_the_trained_model_evaluated_again_at_its_size_reproduces_the_protocol(
    data_root: Path, tmp_path: Path, dataset: str, protocol: str
) -> None:
    """What the protocol measured (on cached features, after the fit's selection) is what evaluate() measures
    on the model it leaves; a larger probe scale runs and the backbone returns to the training size."""
    spec = DATASETS.get(dataset)
    recipe = load_recipe(
        spec.recipe_path(), protocol, "smoke", task=spec.task, overrides=["img_size=[64,32]", *FAST[dataset]]
    )
    request = EvalRequest(
        task=spec.task, dataset=dataset, data_dir=data_root / spec.folder, protocol=protocol, budget="smoke",
        recipe=recipe, img_size=SIZE, run_dir=tmp_path / "run", seed=0, primary_metric=spec.primary_metric,
        probe_scales=((1.0, SIZE), (2.0, (128, 64))),
    )  # fmt: skip
    backbone = load_backbone(BACKBONE, img_size=SIZE)
    result = spec.load_adapter().run(request, backbone)
    assert set(result.by_scale) == {1.0, 2.0}
    again = result.by_scale[1.0]
    for key, value in result.metrics.items():
        assert again[key] == pytest.approx(value, abs=1e-3, nan_ok=True), (key, result.metrics, again)
    assert spec.primary_metric in result.by_scale[2.0]
    assert tuple(backbone.img_size) == SIZE and backbone.model.pos_embed.shape[1] == 1 + 8  # 4 x 2 patches
