"""The CPU learning study (``configs/campaigns/cpu_study.yaml``): its keys are checked, its recipes are at
equal compute, and the whole study machinery runs end to end, shrunken, through the README's command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from saip_bench.bench.campaign import load_campaign
from saip_bench.bench.study import StageClock
from saip_bench.configs import config_path
from saip_bench.errors import ConfigError

STUDY = config_path("campaigns/cpu_study.yaml")
RECIPES = [config_path(f"pretrain/{m}_study_cpu.yaml") for m in ("saip", "mae", "dino")]


def _study(**keys: Any) -> dict[str, Any]:
    """The shipped study campaign as a mapping, recipe paths absolute, ``keys`` replacing top-level keys."""
    raw = yaml.safe_load(Path(STUDY).read_text())
    for run in raw["pretrain"]:
        run["recipe"] = str((Path(STUDY).parent / run["recipe"]).resolve())
    raw.update(keys)
    return {k: v for k, v in raw.items() if v is not None}


def _write(path: Path, raw: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def test_the_shipped_study_writes_its_data_into_the_workspace_and_evaluates_its_exports(
    tmp_path: Path,
) -> None:
    c = load_campaign(STUDY, workspace=tmp_path)
    assert c.data_root == tmp_path / "data"
    assert c.backbones[0] == "random:saip_vit_tiny_patch16"
    exports = [tmp_path / "runs" / "pretrain" / m / "backbone.safetensors" for m in ("saip", "mae", "dino")]
    assert list(c.backbones[1:]) == [str(p.resolve()) for p in exports]
    assert c.scales == (0.5, 1.0, 1.5) and c.seeds == (0, 1, 2)
    assert c.study is not None and c.study.report_folder == "report"
    # an explicit --data-root wins over the workspace's data folder
    assert load_campaign(STUDY, workspace=tmp_path, data_root=tmp_path / "elsewhere").data_root == (
        tmp_path / "elsewhere"
    )


def test_the_study_recipes_are_at_equal_compute() -> None:
    from saip_bench.pretrain.engine.run import build_config

    cfgs = [build_config(path) for path in RECIPES]
    assert [c.method for c in cfgs] == ["saip", "mae", "dino"]
    for key in ("steps", "batch_size", "accum_steps", "blr", "warmup_steps"):
        assert len({c.train[key] for c in cfgs}) == 1, key
    assert (
        len({(tuple(c.views.global_size), tuple(c.views.local_size), c.views.local_crops) for c in cfgs}) == 1
    )
    assert all(tuple(c.model.img_size) == (128, 64) and c.model.arch == "saip_vit_tiny_patch16" for c in cfgs)
    saip, _, dino = cfgs
    assert (saip.heads.out_dim, saip.train.ema_start) == (dino.heads.out_dim, dino.train.ema_start)


@pytest.mark.parametrize(
    ("keys", "named"),
    [
        ({"synthetic_data": {"seed": 0, "lupp": {"ids": 8, "images": 8}}}, "synthetic_data.lupp"),
        ({"synthetic_data": {"eval": {"ids": 0, "images": 8}}}, "synthetic_data.eval.ids"),
        ({"synthetic_data": {"eval": {"ids": 8}}}, "synthetic_data.eval.images"),
        ({"synthetic_data": {"sizes": {"nope": {"ids": 8, "images": 8}}}}, "synthetic_data.sizes.nope"),
        ({"synthetic_data": [1, 2]}, "synthetic_data"),
        ({"synthetic_data": {"sizes": 5}}, "synthetic_data.sizes"),
        ({"pretrain": [{"name": "saip", "recipe": "no_such_recipe.yaml"}]}, "pretrain[0].recipe"),
        ({"pretrain": [{"name": "a b", "recipe": str(RECIPES[0])}]}, "pretrain[0].name"),
        ({"pretrain": [{"name": "x", "recipe": str(RECIPES[0]), "steps": 3}]}, "pretrain[0].steps"),
        (
            {"pretrain": [{"name": "x", "recipe": str(RECIPES[0]), "overrides": ["nokey"]}]},
            "pretrain[0].overrides",
        ),
        (
            {
                "pretrain": [
                    {"name": "x", "recipe": str(RECIPES[0])},
                    {"name": "x", "recipe": str(RECIPES[1])},
                ]
            },
            "pretrain[1].name",
        ),
        ({"pretrain": {"name": "x"}}, "pretrain"),
        (
            {"pretrain": [{"name": "x", "recipe": str(RECIPES[0]), "overrides": ["train.stepz=3"]}]},
            "train.stepz",
        ),
        ({"report": {"folder": "../out"}}, "report.folder"),
        ({"report": {"plot": "x.png"}}, "report.plot"),
    ],
)
def test_a_bad_study_key_is_one_line_naming_the_file_and_the_key(
    tmp_path: Path, keys: dict[str, Any], named: str
) -> None:
    path = _write(tmp_path / "study.yaml", _study(**keys))
    with pytest.raises(ConfigError) as err:
        load_campaign(path, workspace=tmp_path)
    message = str(err.value)
    assert "\n" not in message
    assert str(path) in message and named in message


def test_a_campaign_without_data_root_needs_synthetic_data(tmp_path: Path) -> None:
    path = _write(tmp_path / "study.yaml", _study(synthetic_data=None))
    with pytest.raises(ConfigError, match="data_root is required"):
        load_campaign(path, workspace=tmp_path)


def test_the_data_stage_writes_each_sized_dataset_once_and_plan_lists_what_is_left(tmp_path: Path) -> None:
    from saip_bench.bench.study import StudyData, SynthSize, write_study_data
    from saip_bench.cli.bench_study import pending_stages

    c = load_campaign(_write(tmp_path / "s.yaml", _study(datasets=["pa100k"])), workspace=tmp_path)
    stages = ["pretrain saip", "pretrain mae", "pretrain dino"]
    assert [line.split(":")[0] for line in pending_stages(c)] == ["data", *stages]
    data = StudyData(seed=0, lup=SynthSize(2, 4), eval=SynthSize(4, 16), sizes={"pa100k": SynthSize(2, 8)})
    assert write_study_data(data, c.data_root, ["pa100k"]) == ["lup", "pa100k"]
    assert sorted(p.name for p in c.data_root.iterdir()) == ["LUP", "PA-100K"]
    assert write_study_data(data, c.data_root, ["pa100k"]) == []  # there already: kept, not rewritten
    assert [line.split(":")[0] for line in pending_stages(c)] == stages


def test_a_failed_stage_is_timed_and_marked() -> None:
    clock = StageClock()
    with clock.stage("data", "x"):
        pass
    with pytest.raises(RuntimeError), clock.stage("pretrain saip"):
        raise RuntimeError("boom")
    assert [s.name for s in clock.stages] == ["data", "pretrain saip"]
    assert clock.stages[1].detail == "(failed)"
    assert clock.total == sum(s.seconds for s in clock.stages) >= 0


#: The shrunken study: every stage of the real one on tiny data, 2 pretraining steps, one seed, two scales
#: and the two cheapest datasets (CI's time; the parsing and text probes run in tests/evaluate).
TINY_STEPS = ["train.steps=2", "train.warmup_steps=1", "train.batch_size=2", "train.threads=1"]
TINY_DATASETS = ["market1501", "pa100k"]


@pytest.mark.slow
def test_the_shrunken_study_runs_every_stage_from_the_readme_command(tmp_path: Path) -> None:
    raw = _study(
        synthetic_data={"seed": 0, "lup": {"ids": 4, "images": 8}, "eval": {"ids": 6, "images": 40}},
        datasets=TINY_DATASETS,
        scales=[0.5, 1.0],
        seeds=[0],
        device="cpu",
    )
    for run in raw["pretrain"]:
        run["overrides"] = [*TINY_STEPS, "train.tensorboard=false", "train.checkpoint_every=1"]
    campaign = _write(tmp_path / "cpu_study.yaml", raw)
    ws = tmp_path / "ws"
    cmd = [sys.executable, "-m", "saip_bench.cli.app", "bench", "run", str(campaign), "--workspace", str(ws)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    stages = json.loads((ws / "campaigns" / "cpu-study" / "stages.json").read_text())["stages"]
    names = [s["name"] for s in stages]
    assert names == ["data", "pretrain saip", "pretrain mae", "pretrain dino", "evaluate", "report"]
    for method in ("saip", "mae", "dino"):
        assert (ws / "runs" / "pretrain" / method / "backbone.safetensors").is_file()
    from saip_bench.results import open_workspace_store

    records = open_workspace_store(ws).query()
    cells = {(r.backbone_name, r.dataset, round(r.scale, 3)) for r in records}
    assert len(cells) == len(records) == 4 * len(TINY_DATASETS) * 2  # backbones x datasets x scales
    assert {r.backbone_name for r in records} >= {"saip", "mae", "dino"}
    for name in ("table.md", "scales.md", "scales.png"):
        assert (ws / "report" / name).stat().st_size > 0
    assert "| saip |" in (ws / "report" / "table.md").read_text()

    again = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "all there already" in again.stdout and "0 to start" in again.stdout
    stages = json.loads((ws / "campaigns" / "cpu-study" / "stages.json").read_text())["stages"]
    assert all("skipped" in s["detail"] for s in stages if s["name"].startswith("pretrain"))
    assert len(open_workspace_store(ws).query()) == len(records)
