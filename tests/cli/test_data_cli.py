"""`saip data synth|check` and their library (saip_bench.data_check), with fake format modules.

A fake format module per dataset, swapped into the registry's specs (``checker``/``writer`` references),
tests the dispatch, the atomic writes and the status table on their own. The last tests run the real
market1501 / lup code.
"""

from __future__ import annotations

import dataclasses
import sys
import types
from pathlib import Path

import pytest
from typer.testing import CliRunner

import saip_bench.datasets as datasets_module
from saip_bench.cli.app import app
from saip_bench.data_check import check_datasets, resolve_formats, write_synth_dataset
from saip_bench.datasets import DATASETS, LUP, DatasetSpec, SynthOptions, synth_formats
from saip_bench.errors import DataFormatError, SaipError

runner = CliRunner()


def _fake_module(name: str, *, fail_after_first_file: bool = False) -> types.ModuleType:
    """A format module writing ``ids.txt`` + one file per image; check() counts them, rejects 'BAD'."""
    module = types.ModuleType(f"fake_{name}")

    def write_synth(out: Path, options: SynthOptions) -> None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "ids.txt").write_text(f"{options.ids} {options.seed}\n")
        if fail_after_first_file:
            raise RuntimeError("writer crashed half-way")
        for i in range(options.images):
            (out / f"{i:04d}.img").write_text("x")

    def check(root: Path) -> dict[str, int]:
        if (root / "BAD").exists():
            raise DataFormatError(root / "BAD", "unexpected file\nsecond line of detail")
        if not (root / "ids.txt").is_file():
            raise DataFormatError(root / "ids.txt", "missing")
        return {
            "train": len(list(root.glob("*.img"))),
            "train_ids": int((root / "ids.txt").read_text().split()[0]),
        }

    module.write_synth = write_synth  # type: ignore[attr-defined]
    module.check = check  # type: ignore[attr-defined]
    return module


def _use_modules(monkeypatch: pytest.MonkeyPatch, modules: dict[str, types.ModuleType]) -> None:
    """Point the specs named in ``modules`` at them; every other spec names no check and no writer."""

    def fake(spec: DatasetSpec) -> DatasetSpec:
        module = modules.get(spec.name)
        if module is None:
            return dataclasses.replace(spec, checker=None, writer=None)
        monkeypatch.setitem(sys.modules, module.__name__, module)
        return dataclasses.replace(
            spec, checker=f"{module.__name__}:check", writer=f"{module.__name__}:write_synth"
        )

    for name, spec in DATASETS.items():
        monkeypatch.setitem(DATASETS._entries, name, fake(spec))
    monkeypatch.setattr(datasets_module, "LUP", fake(LUP))


@pytest.fixture
def fake_formats(monkeypatch):
    """market1501, msmt17 and lup get fake modules; every other format is "not yet supported"."""
    modules = {name: _fake_module(name) for name in ("market1501", "msmt17", "lup")}
    _use_modules(monkeypatch, modules)
    return modules


def _synth(*args: str):
    return runner.invoke(app, ["data", "synth", *args])


def _check(*args: str):
    return runner.invoke(app, ["data", "check", *args])


def test_synth_one_format_goes_to_its_usual_folder(fake_formats, tmp_path):
    result = _synth(
        "--format", "market1501", "--out", str(tmp_path), "--ids", "3", "--images", "5", "--seed", "7"
    )
    assert result.exit_code == 0, result.output
    folder = tmp_path / DATASETS.get("market1501").folder
    assert (folder / "ids.txt").read_text() == "3 7\n"
    assert len(list(folder.glob("*.img"))) == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == [folder.name]  # no temporaries left


def test_synth_all_writes_supported_and_lists_the_rest(fake_formats, tmp_path):
    result = _synth("--format", "all", "--out", str(tmp_path), "--images", "2")
    assert result.exit_code == 0, result.output
    expected = {DATASETS.get("market1501").folder, DATASETS.get("msmt17").folder, LUP.folder}
    assert {p.name for p in tmp_path.iterdir()} == expected
    assert "not yet supported" in result.output and "fashionpedia" in result.output


def test_synth_then_check_finds_them(fake_formats, tmp_path):
    assert _synth("--format", "all", "--out", str(tmp_path), "--images", "4", "--ids", "2").exit_code == 0
    statuses = {s.name: s for s in check_datasets(tmp_path)}
    assert len(statuses) == 12 and "lup" not in statuses
    market = statuses["market1501"]
    assert market.status == "found" and market.counts == {"train": 4, "train_ids": 2}
    assert market.official["train"] == 12936
    assert market.notes == ["smaller than official"]
    assert statuses["pa100k"].status == "not yet supported"
    result = _check("--root", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "Market-1501" in result.output and "Fashionpedia" in result.output
    assert "train 4/12,936" in result.output and "smaller" in result.output


def test_unknown_format_is_one_red_line(fake_formats, tmp_path):
    result = _synth("--format", "market", "--out", str(tmp_path))
    assert result.exit_code == 1
    assert "unknown synthetic format 'market'" in result.output
    assert "market1501" in result.output and "lup" in result.output and "all" in result.output
    assert "Traceback" not in result.output and not any(tmp_path.iterdir())


def test_unsupported_single_format_is_an_error(fake_formats, tmp_path):
    result = _synth("--format", "lip", "--out", str(tmp_path))
    assert result.exit_code == 1 and "not yet supported" in result.output


def test_failed_writer_leaves_nothing(monkeypatch, tmp_path):
    _use_modules(monkeypatch, {"market1501": _fake_module("market1501", fail_after_first_file=True)})
    with pytest.raises(RuntimeError, match="half-way"):
        write_synth_dataset(DATASETS.get("market1501"), tmp_path, ids=1, images=1, seed=0)
    assert list(tmp_path.iterdir()) == []


def test_existing_folder_needs_overwrite(fake_formats, tmp_path):
    folder = tmp_path / DATASETS.get("market1501").folder
    folder.mkdir()
    (folder / "precious.jpg").write_text("real data")
    result = _synth("--format", "market1501", "--out", str(tmp_path))
    assert result.exit_code == 1 and "--overwrite" in result.output
    assert (folder / "precious.jpg").exists()
    result = _synth("--format", "market1501", "--out", str(tmp_path), "--overwrite", "--images", "1")
    assert result.exit_code == 0, result.output
    assert not (folder / "precious.jpg").exists() and (folder / "0000.img").exists()


def test_check_statuses_alias_override_and_malformed(fake_formats, tmp_path):
    # MSMT17 under its torchreid-style alias; Market-1501 given explicitly and broken.
    msmt = tmp_path / "root" / "msmt17" / "MSMT17_V1"
    fake_formats["msmt17"].write_synth(msmt, SynthOptions(ids=1, images=1, seed=0))
    broken = tmp_path / "elsewhere"
    fake_formats["market1501"].write_synth(broken, SynthOptions(ids=1, images=1, seed=0))
    (broken / "BAD").write_text("")
    statuses = {s.name: s for s in check_datasets(tmp_path / "root", {"market1501": broken})}
    assert statuses["msmt17"].status == "found" and statuses["msmt17"].path == msmt
    market = statuses["market1501"]
    assert market.status == "malformed" and not market.ok
    assert market.problem == f"{broken / 'BAD'}: unexpected file second line of detail"  # one line
    assert statuses["lip"].status == "not yet supported"

    result = _check("--root", str(tmp_path / "root"), "--dataset", f"market1501={broken}")
    assert result.exit_code == 1  # a malformed dataset fails the check
    assert "1 malformed" in result.output
    assert f"Market-1501: {broken / 'BAD'}: unexpected file second line of detail" in result.output


def test_check_missing_dataset(fake_formats, tmp_path):
    statuses = {s.name: s for s in check_datasets(tmp_path)}
    assert statuses["market1501"].status == "missing"
    assert statuses["market1501"].path == tmp_path / DATASETS.get("market1501").folder
    assert all(s.ok for s in statuses.values())


def test_check_user_errors(fake_formats, tmp_path):
    with pytest.raises(SaipError, match="valid names"):
        check_datasets(tmp_path, {"market": tmp_path})
    with pytest.raises(SaipError, match="not a folder"):
        check_datasets(tmp_path / "nope")
    for args, message in (
        ([], "--root"),
        (["--root", str(tmp_path), "--dataset", "market1501"], "NAME=PATH"),
        (["--root", str(tmp_path / "nope")], "not a folder"),
    ):
        result = _check(*args)
        assert result.exit_code == 1 and message in result.output, result.output


def test_resolve_formats(fake_formats):
    supported, unsupported = resolve_formats("all")
    assert [i.name for i in supported] == ["market1501", "msmt17", "lup"]
    assert len(supported) + len(unsupported) == len(synth_formats()) == 13


# -- the real code --------------------------------------------------------------------------------------


def test_real_market1501_synth_then_check(tmp_path):
    info = DATASETS.get("market1501")
    result = _synth(
        "--format", "market1501", "--out", str(tmp_path), "--ids", "3", "--images", "24", "--seed", "1"
    )
    assert result.exit_code == 0, result.output
    (status,) = [s for s in check_datasets(tmp_path) if s.name == "market1501"]
    assert status.status == "found", status.problem
    assert status.path == tmp_path / info.folder and sum(status.counts.values()) > 0


def test_real_lup_synth(tmp_path):
    info = LUP
    result = _synth("--format", "lup", "--out", str(tmp_path), "--ids", "2", "--images", "6")
    assert result.exit_code == 0, result.output
    assert any(p.is_file() for p in (tmp_path / info.folder).rglob("*"))
