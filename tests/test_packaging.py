"""One namespace: pretrain/, evaluate/, tasks/, configs/ install under saip_bench (editable or wheel)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REMAPPED = {
    "pretrain": "saip_bench.pretrain",
    "evaluate": "saip_bench.evaluate",
    "tasks": "saip_bench.tasks",
    "configs": "saip_bench.configs",
}


def test_remapped_packages_import_from_their_folders() -> None:
    import importlib

    for folder, module in REMAPPED.items():
        mod = importlib.import_module(module)
        assert Path(mod.__file__).resolve() == (REPO / folder / "__init__.py").resolve()


def test_no_module_is_importable_under_a_second_name() -> None:
    # A fresh interpreter that imports the whole package must never see a top-level pretrain/evaluate/tasks.
    code = (
        "import sys, pkgutil, importlib, saip_bench\n"
        "for m in pkgutil.walk_packages(saip_bench.__path__, 'saip_bench.'):\n"
        "    pass\n"
        "import saip_bench.pretrain, saip_bench.evaluate, saip_bench.tasks, saip_bench.cli.app\n"
        "bad = [n for n in sys.modules if n.split('.')[0] in ('pretrain', 'evaluate', 'tasks', 'configs')]\n"
        "print(bad); assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO / "tests")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Build from a copy: setuptools leaves build/ and *.egg-info beside the sources it builds.
    src = tmp_path_factory.mktemp("src") / "saip-bench"
    ignore = shutil.ignore_patterns(".git", ".venv", "build", "*.egg-info", "__pycache__", ".*_cache")
    shutil.copytree(REPO, src, ignore=ignore)
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(src),
        ],
        check=True,
        capture_output=True,
    )
    (whl,) = out.glob("saip_bench-*.whl")
    return whl


def test_wheel_holds_only_the_saip_bench_namespace(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"saip_bench"}
    for module in REMAPPED.values():
        assert module.replace(".", "/") + "/__init__.py" in names
    # Every subpackage of the remapped folders is in the wheel, not only the top one.
    for folder, module in REMAPPED.items():
        for init in (REPO / folder).rglob("__init__.py"):
            rel = init.relative_to(REPO / folder).as_posix()
            assert f"{module.replace('.', '/')}/{rel}" in names, rel
    # Shipped recipes are package data.
    for yaml in (REPO / "configs").rglob("*.yaml"):
        assert "saip_bench/configs/" + yaml.relative_to(REPO / "configs").as_posix() in names


def test_wheel_install_imports_through_saip_bench(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
    )
    code = (
        f"import sys; sys.path.insert(0, {str(target)!r})\n"
        "import saip_bench.pretrain, saip_bench.tasks, saip_bench.evaluate, saip_bench.configs\n"
        "print(saip_bench.pretrain.__file__)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=tmp_path
    )
    assert out.stdout.strip().startswith(str(target))
