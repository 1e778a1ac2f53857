"""CUHK-PEDES / ICFG-PEDES: loaders read what write_synth writes; a malformed record is one clear error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from saip_bench.cli.app import app
from saip_bench.datasets import DATASETS
from saip_bench.errors import DataFormatError, SaipError
from saip_bench.tasks.text_retrieval.data.common import caption_tokens

MODULES = {"cuhk": ("cuhk_pedes", "reid_raw.json"), "icfg": ("icfg_pedes", "ICFG-PEDES.json")}


def test_cuhk_written_format_is_read_back(cuhk_dir: Path) -> None:
    records = json.loads((cuhk_dir / "reid_raw.json").read_text())
    assert {r["split"] for r in records} == {"train", "val", "test"}
    assert min(r["id"] for r in records) == 1
    for r in records:
        assert set(r) == {"split", "captions", "file_path", "processed_tokens", "id"}
        assert len(r["captions"]) == 2 and (cuhk_dir / "imgs" / r["file_path"]).is_file()
        assert r["processed_tokens"] == [caption_tokens(c) for c in r["captions"]]
    data = DATASETS.get("cuhk_pedes").load(cuhk_dir)
    assert sum(len(v) for v in data.splits.values()) == len(records) == 18
    train_ids = {i.pid for i in data.split("train")}
    assert train_ids.isdisjoint({i.pid for i in data.split("test")})
    texts, pids = data.captions("test")
    assert len(texts) == 2 * len(data.split("test")) and set(pids) <= {r["id"] for r in records}
    assert DATASETS.get("cuhk_pedes").check(cuhk_dir) == {
        "images": 18,
        "ids": 6,
        "captions": 36,
        "train": 12,
        "val": 3,
        "test": 3,
    }


def test_icfg_written_format_is_read_back(icfg_dir: Path) -> None:
    records = json.loads((icfg_dir / "ICFG-PEDES.json").read_text())
    assert {r["split"] for r in records} == {"train", "test"} and min(r["id"] for r in records) == 0
    assert all(r["file_path"].startswith(f"{r['split']}/{r['id']:04d}/") for r in records)
    assert all(len(r["captions"]) == 1 for r in records)
    counts = DATASETS.get("icfg_pedes").check(icfg_dir)
    assert counts["images"] == 18 and counts["captions"] == 18 and counts["ids"] == 6
    assert counts["train"] + counts["test"] == 18 and set(counts) == {
        "images",
        "ids",
        "captions",
        "train",
        "test",
    }


def test_captions_describe_the_identity(cuhk_dir: Path) -> None:
    """Text and image agree: the captions of one identity name the same garments and colours."""
    data = DATASETS.get("cuhk_pedes").load(cuhk_dir)
    by_pid: dict[int, list[set[str]]] = {}
    for items in data.splits.values():
        for item in items:
            by_pid.setdefault(item.pid, []).extend(set(caption_tokens(c)) for c in item.captions)
    for words in by_pid.values():
        shared = set.intersection(*words)
        assert len(shared) >= 4, shared  # e.g. colour + garment words repeat across every caption


def test_write_synth_is_deterministic_and_refuses_bad_input(tmp_path: Path) -> None:
    DATASETS.get("cuhk_pedes").write_synth(tmp_path / "a", ids=3, images=6, seed=5)
    DATASETS.get("cuhk_pedes").write_synth(tmp_path / "b", ids=3, images=6, seed=5)
    assert (tmp_path / "a/reid_raw.json").read_bytes() == (tmp_path / "b/reid_raw.json").read_bytes()
    with pytest.raises(SaipError, match="not empty"):
        DATASETS.get("cuhk_pedes").write_synth(tmp_path / "a", ids=3, images=6, seed=5)
    with pytest.raises(SaipError, match="at least 2 identities"):
        DATASETS.get("icfg_pedes").write_synth(tmp_path / "c", ids=1, images=6, seed=5)
    assert not (tmp_path / "c").exists()


def _damage(records: list[dict], problem: str) -> None:
    if problem == "no captions":
        records[2]["captions"] = []
    elif problem == "missing image":
        records[2]["file_path"] = "nowhere/missing.jpg"
    elif problem == "bad split":
        records[2]["split"] = "query"
    elif problem == "missing key":
        del records[2]["processed_tokens"]


@pytest.mark.parametrize("dataset", ["cuhk", "icfg"])
@pytest.mark.parametrize(
    ("problem", "message"),
    [
        ("no captions", "no captions"),
        ("missing image", "does not exist"),
        ("bad split", "split 'query' is not one of"),
        ("missing key", "missing key(s) processed_tokens"),
    ],
)
def test_malformed_record_is_one_clear_error(
    dataset: str, problem: str, message: str, request: pytest.FixtureRequest
) -> None:
    name, json_name = MODULES[dataset]
    root = request.getfixturevalue(f"{dataset}_dir")
    path = root / json_name
    records = json.loads(path.read_text())
    _damage(records, problem)
    path.write_text(json.dumps(records))
    with pytest.raises(DataFormatError) as info:
        DATASETS.get(name).check(root)
    text = str(info.value)
    assert "\n" not in text and text.startswith(str(path)) and "record 2:" in text and message in text


def test_missing_files_and_bad_json_name_the_file(cuhk_dir: Path) -> None:
    (cuhk_dir / "reid_raw.json").write_text("{not json")
    with pytest.raises(DataFormatError, match="reid_raw.json: not readable JSON"):
        DATASETS.get("cuhk_pedes").check(cuhk_dir)
    (cuhk_dir / "reid_raw.json").unlink()
    with pytest.raises(DataFormatError, match="missing annotation file"):
        DATASETS.get("cuhk_pedes").check(cuhk_dir)


def test_cli_synth_all_then_check_finds_both(tmp_path: Path) -> None:
    runner = CliRunner()
    root = tmp_path / "data"
    synth = runner.invoke(
        app, ["data", "synth", "--format", "all", "--out", str(root), "--ids", "4", "--images", "8"]
    )
    assert synth.exit_code == 0, synth.output
    assert (root / "CUHK-PEDES" / "reid_raw.json").is_file() and (
        root / "ICFG-PEDES" / "ICFG-PEDES.json"
    ).is_file()
    check = runner.invoke(app, ["data", "check", "--root", str(root)])
    lines = {line.split("│")[1].strip(): line for line in check.output.splitlines() if line.count("│") > 3}
    assert "found" in lines["CUHK-PEDES"] and "found" in lines["ICFG-PEDES"], check.output
