"""Small shared renders for the synth tests (rendering is the slow part, so do it once per module)."""

import numpy as np
import pytest

from saip_bench.synth import SynthWorld

SIZE = (128, 64)


@pytest.fixture(scope="module")
def world() -> SynthWorld:
    return SynthWorld(7)


@pytest.fixture(scope="module")
def samples(world):
    """40 crops: 20 identities x 2 cameras, at 256x128 so small parts are still drawn."""
    rng = np.random.default_rng(0)
    return [world.render_person(world.identity(pid), cam, size=(256, 128), rng=rng)
            for pid in range(20) for cam in (1, 2)]  # fmt: skip
