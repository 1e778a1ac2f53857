"""Dispatch: dataset folders, recipes, skip-unless-force, scales and the records it writes."""

from __future__ import annotations

from pathlib import Path

import pytest

import saip_bench
from saip_bench.datasets import DATASETS, DatasetSpec
from saip_bench.errors import ConfigError, DataFormatError
from saip_bench.evaluate import dispatch
from saip_bench.evaluate.adapter import EvalRequest, EvalResult, TaskAdapter
from saip_bench.evaluate.protocols import config_digest, load_recipe
from saip_bench.results import open_workspace_store

BACKBONE = "random:test_vit"  # timm's tiny test ViT: builds in milliseconds


class FakeAdapter:
    task = "reid"
    protocols = ("finetune", "frozen")

    def __init__(self) -> None:
        self.requests: list[EvalRequest] = []

    def run(self, request: EvalRequest, backbone) -> EvalResult:
        self.requests.append(request)
        assert tuple(backbone.img_size) == request.img_size
        by_scale = {s: {"mAP": 10.0 * s, "R1": 50.0} for s, _ in request.probe_scales}
        return EvalResult({"mAP": 10.0 * request.scale, "R1": 50.0}, "mAP", by_scale=by_scale)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeAdapter:
    adapter = FakeAdapter()
    assert isinstance(adapter, TaskAdapter)
    monkeypatch.setattr(DatasetSpec, "load_adapter", lambda self: adapter)
    return adapter


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    (tmp_path / "data" / "Market-1501-v15.09.15").mkdir(parents=True)
    return tmp_path / "data"


def _run(data_root: Path, ws: Path, **kw):
    args = dict(task="reid", dataset="market1501", backbone=BACKBONE, data_root=data_root, workspace=ws,
                budget="smoke", device="cpu")  # fmt: skip
    return dispatch.evaluate(**{**args, **kw})


def test_records_have_the_right_fields(fake: FakeAdapter, data_root: Path, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    [out] = _run(data_root, ws)
    assert out.status == "done" and out.protocol == "finetune"
    [rec] = open_workspace_store(ws).query()
    spec = DATASETS.get("market1501")
    resolved = load_recipe(spec.recipe_path(), "finetune", "smoke")
    assert rec.config_digest == config_digest(resolved)
    assert (rec.task, rec.dataset, rec.protocol, rec.budget, rec.scale) == (
        "reid",
        "market1501",
        "finetune",
        "smoke",
        1.0,
    )
    assert rec.backbone_name == BACKBONE and rec.pretrain_method == "random" and len(rec.backbone_digest) >= 8
    assert (
        rec.primary_metric == "mAP" and rec.primary_value == 10.0 and rec.metrics == {"mAP": 10.0, "R1": 50.0}
    )
    assert rec.package_version == saip_bench.__version__ and rec.seed == resolved["seed"]
    assert rec.duration_s >= 0 and rec.started_at <= rec.ended_at and "T" in rec.started_at
    request = fake.requests[0]
    assert request.data_dir == data_root / "Market-1501-v15.09.15" and request.img_size == (256, 128)
    assert request.run_dir.is_dir() and (request.run_dir / "recipe.json").is_file()
    assert request.recipe["train"]["epochs"] == 1


def test_rerun_is_skipped_unless_forced(fake: FakeAdapter, data_root: Path, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    _run(data_root, ws)
    [again] = _run(data_root, ws)
    assert again.status == "skipped" and len(fake.requests) == 1
    assert open_workspace_store(ws).count() == 1
    [forced] = _run(data_root, ws, force=True)
    assert forced.status == "done" and open_workspace_store(ws).count() == 2
    [other] = _run(data_root, ws, protocol="frozen")  # another protocol is another evaluation
    assert other.status == "done" and open_workspace_store(ws).count() == 3


def test_scales_run_at_rounded_sizes_and_record_each(
    fake: FakeAdapter, data_root: Path, tmp_path: Path
) -> None:
    ws = tmp_path / "ws"
    outs = _run(data_root, ws, scales=[0.5, 0.8, 1.0], protocol="frozen", train_per_scale=True)
    assert [o.status for o in outs] == ["done"] * 3
    assert [r.img_size for r in fake.requests] == [(128, 64), (208, 96), (256, 128)]
    assert all(r.probe_scales == () for r in fake.requests)
    records = open_workspace_store(ws).query()
    assert sorted(r.scale for r in records) == [0.5, 0.8, 1.0]
    assert all(r.train_scale == r.scale for r in records) and len({r.train_run for r in records}) == 3
    assert [
        o.status for o in _run(data_root, ws, scales=[0.5, 1.25], protocol="frozen", train_per_scale=True)
    ] == [
        "skipped",
        "done",
    ]


def test_the_scale_probe_trains_once_and_records_every_scale(
    fake: FakeAdapter, data_root: Path, tmp_path: Path
) -> None:
    ws = tmp_path / "ws"
    outs = _run(data_root, ws, scales=[0.5, 0.8, 1.0])
    assert [(o.scale, o.status) for o in outs] == [(0.5, "done"), (0.8, "done"), (1.0, "done")]
    [request] = fake.requests  # one run: trained at the recipe's size, probed at the others
    assert request.img_size == (256, 128) and request.scale == 1.0
    assert request.probe_scales == ((0.5, (128, 64)), (0.8, (208, 96)))
    records = sorted(open_workspace_store(ws).query(), key=lambda r: r.scale)
    assert [(r.scale, r.primary_value) for r in records] == [(0.5, 5.0), (0.8, 8.0), (1.0, 10.0)]
    assert all(r.train_scale == 1.0 for r in records)
    [run] = {r.train_run for r in records}  # linked to the one training run
    assert run.startswith("runs/market1501/") and run.endswith("-x1") and (ws / run / "recipe.json").is_file()
    # Recorded scales are skipped; a new one reruns the run but records only itself.
    outs = _run(data_root, ws, scales=[0.5, 1.5])
    assert [(o.scale, o.status) for o in outs] == [(0.5, "skipped"), (1.5, "done")]
    assert fake.requests[-1].probe_scales == ((1.5, (384, 192)),) and open_workspace_store(ws).count() == 4
    assert [o.status for o in _run(data_root, ws, scales=[0.5, 1.0])] == ["skipped", "skipped"]
    assert len(fake.requests) == 2
    # A probe record (trained at x1) is not the per-scale evaluation of the same scale.
    [out] = _run(data_root, ws, scales=[0.5], train_per_scale=True)
    assert out.status == "done" and fake.requests[-1].img_size == (128, 64)
    per_scale = [r for r in open_workspace_store(ws).query(scale=0.5) if r.train_scale == 0.5]
    assert len(per_scale) == 1 and per_scale[0].train_run.endswith("-x0.5")


def test_frozen_probe_records_the_scale_it_ran_at(fake: FakeAdapter, data_root: Path, tmp_path: Path) -> None:
    """frozen trains nothing: its probe records are the same evaluations as per-scale ones (shared keys)."""
    ws = tmp_path / "ws"
    _run(data_root, ws, scales=[0.5, 1.0], protocol="frozen")
    assert sorted((r.scale, r.train_scale) for r in open_workspace_store(ws).query()) == [
        (0.5, 0.5),
        (1.0, 1.0),
    ]
    outs = _run(data_root, ws, scales=[0.5, 1.0], protocol="frozen", train_per_scale=True)
    assert [o.status for o in outs] == ["skipped", "skipped"] and len(fake.requests) == 1


def test_an_adapter_that_ignores_the_probe_is_a_config_error(
    fake: FakeAdapter, data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(FakeAdapter, "run", lambda self, request, backbone: EvalResult({"mAP": 1.0}, "mAP"))
    with pytest.raises(ConfigError, match=r"no metrics at x0.5 .*--train-per-scale"):
        _run(data_root, tmp_path / "ws", scales=[0.5, 1.0])
    assert not (tmp_path / "ws").exists()  # a fresh workspace with nothing recorded is taken back


def test_missing_data_and_bad_options(fake: FakeAdapter, data_root: Path, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    with pytest.raises(DataFormatError, match="no MSMT17 folder"):
        _run(data_root, ws, dataset="msmt17")
    with pytest.raises(DataFormatError, match="data root is not a folder"):
        _run(tmp_path / "nowhere", ws)
    outs = _run(data_root, ws, dataset="all")
    assert [(o.dataset, o.status) for o in outs] == [("market1501", "done"), ("msmt17", "missing")]
    with pytest.raises(ConfigError, match="supports protocols"):
        _run(data_root, ws, protocol="linear")
    with pytest.raises(ConfigError, match="belongs to task"):
        _run(data_root, ws, dataset="pa100k")
    with pytest.raises(ConfigError, match="unknown task"):
        _run(data_root, ws, task="juggling", dataset="all")
    with pytest.raises(ConfigError, match="scales"):
        _run(data_root, ws, scales=[0.0])


def test_data_root_may_be_the_dataset_folder(fake: FakeAdapter, data_root: Path, tmp_path: Path) -> None:
    folder = data_root / "Market-1501-v15.09.15"
    [out] = _run(folder, tmp_path / "ws")
    assert out.status == "done" and fake.requests[0].data_dir == folder


def test_every_run_dir_gets_a_text_log_even_when_nothing_trains(
    data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    class LoggingAdapter(FakeAdapter):
        def run(self, request: EvalRequest, backbone) -> EvalResult:
            logging.getLogger("saip_bench.tasks.fake").info("features of 12 query crops")
            return super().run(request, backbone)

    adapter = LoggingAdapter()
    monkeypatch.setattr(DatasetSpec, "load_adapter", lambda self: adapter)
    caplog.set_level(logging.INFO, logger="saip_bench")
    [out] = _run(data_root, tmp_path / "ws", protocol="frozen")
    text = (out.run_dir / "train.log").read_text()
    assert "market1501 frozen x1" in text and "running" in text
    assert text.count("features of 12 query crops") == 1
    assert not logging.getLogger("saip_bench").handlers or all(
        getattr(h, "saip_run_dir", None) is None for h in logging.getLogger("saip_bench").handlers
    )  # the run's handler is gone once it ends


def test_task_all_and_several_backbones(fake: FakeAdapter, tmp_path: Path) -> None:
    """``--task all``: every dataset found, one ``missing`` per absent one; each backbone on each dataset."""
    root = tmp_path / "data"
    for name in ("market1501", "pa100k"):
        (root / DATASETS.get(name).folder).mkdir(parents=True)
    ws = tmp_path / "ws"
    outcomes = dispatch.evaluate(
        task="all",
        dataset="all",
        backbone=[BACKBONE, "random:test_vit2"],
        data_root=root,
        workspace=ws,
        protocol="finetune",
        budget="smoke",
        device="cpu",
    )
    done = sorted((o.backbone, o.dataset) for o in outcomes if o.status == "done")
    assert done == sorted((b, d) for b in (BACKBONE, "random:test_vit2") for d in ("market1501", "pa100k"))
    evaluated = [n for n in DATASETS.names() if DATASETS.get(n).protocols]
    # Every other dataset is one "missing" (or "n/a") outcome per backbone, never an error.
    assert len(outcomes) == 2 * len(evaluated)
    assert {o.status for o in outcomes} <= {"done", "missing", "n/a"}
    assert {o.dataset for o in outcomes if o.status == "missing"} == set(evaluated) - {"market1501", "pa100k"}
    assert len(open_workspace_store(ws).query()) == 4
    with pytest.raises(ConfigError, match="unknown backbone architecture"):  # refused before anything ran
        dispatch.evaluate(task="all", dataset="all", backbone=[BACKBONE, "random:nope"], data_root=root,
                          workspace=tmp_path / "ws2", budget="smoke", device="cpu")  # fmt: skip
    assert not (tmp_path / "ws2").exists()
