"""Fixtures of the attribute-task tests: a spy on the synthetic renderer and tiny synthetic datasets."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from saip_bench.datasets import DATASETS
from saip_bench.synth.types import PersonSample
from saip_bench.tasks.attribute.data import pa100k, peta_zs, render


def _has_generator() -> bool:
    try:
        from saip_bench.synth import SynthWorld  # noqa: F401
    except ImportError:
        return False
    return True


def _stub_render_persons(pids, *, seed: int, size=(64, 32), cameras: int = 6) -> Iterator[PersonSample]:
    """Stand-in while the synthetic generator is not in the tree: real attribute draws, drawn as cells."""
    from saip_bench.synth.attributes import (
        PA100K_ATTRIBUTES,
        PETA_ATTRIBUTES,
        identity_attributes,
        sample_appearance,
        view_attributes,
    )

    names = sorted(set(PA100K_ATTRIBUTES) | set(PETA_ATTRIBUTES))
    rng = np.random.default_rng(seed)
    cache: dict[int, dict[str, bool]] = {}
    h, w = size
    for pid in pids:
        pid = int(pid)
        if pid not in cache:
            cache[pid] = identity_attributes(sample_appearance(np.random.default_rng([seed, pid])))
        attrs = {**cache[pid], **view_attributes(("front", "side", "back")[int(rng.integers(3))])}
        cells = np.array([220 if attrs[n] else 30 for n in names] + [0] * (64 - len(names)), dtype=np.uint8)
        grid = np.kron(cells.reshape(8, 8), np.ones((h // 8, w // 8), dtype=np.uint8))
        image = np.stack([grid] * 3, axis=-1) + rng.integers(0, 20, size=(h, w, 3)).astype(np.uint8)
        yield PersonSample(
            image=image, pid=pid, camid=int(rng.integers(1, cameras + 1)), attributes=attrs, caption="",
            keypoints17=np.zeros((17, 3), np.float32), keypoints133=np.zeros((133, 3), np.float32),
            part_mask=np.zeros((h, w), np.uint8), bbox=(0.0, 0.0, float(w), float(h)),
        )  # fmt: skip


@pytest.fixture(scope="session")
def stub_renderer():
    """None when the synthetic generator exists, else the stand-in renderer."""
    return None if _has_generator() else _stub_render_persons


@pytest.fixture
def rendered(monkeypatch: pytest.MonkeyPatch) -> list[PersonSample]:
    """Every PersonSample a writer renders, in order (the real generator when present)."""
    samples: list[PersonSample] = []
    source = render.render_persons if _has_generator() else _stub_render_persons

    def spy(*args, **kwargs):
        for sample in source(*args, **kwargs):
            samples.append(sample)
            yield sample

    monkeypatch.setattr(render, "render_persons", spy)
    return samples


def _write(tmp: Path, module, name: str, ids: int, images: int) -> Path:
    out = tmp / name
    with pytest.MonkeyPatch.context() as mp:
        if not _has_generator():
            mp.setattr(render, "render_persons", _stub_render_persons)
        DATASETS.get(module.__name__.rsplit(".", 1)[-1]).write_synth(out, ids=ids, images=images, seed=3)
    return out


@pytest.fixture(scope="module")
def pa100k_master(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write(tmp_path_factory.mktemp("pa"), pa100k, "PA-100K", ids=8, images=20)


@pytest.fixture(scope="module")
def peta_master(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write(tmp_path_factory.mktemp("peta"), peta_zs, "PETA", ids=10, images=20)


@pytest.fixture
def pa100k_dir(pa100k_master: Path, tmp_path: Path) -> Path:
    """A private copy of a 20-image synthetic PA-100K that a test may damage."""
    return Path(shutil.copytree(pa100k_master, tmp_path / "PA-100K"))


@pytest.fixture
def peta_dir(peta_master: Path, tmp_path: Path) -> Path:
    """A private copy of a 20-image synthetic PETA-zs that a test may damage."""
    return Path(shutil.copytree(peta_master, tmp_path / "PETA"))
