"""Person crops for the synthetic attribute datasets, drawn by the shared synthetic generator."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from saip_bench.synth.types import PersonSample

#: Crop size of the synthetic images (H, W). Real PA-100K / PETA crops vary in size and every recipe resizes,
#: so one small size keeps the writers fast without changing what the loaders see.
SYNTH_SIZE = (128, 64)


def render_persons(
    pids: Sequence[int], *, seed: int, size: tuple[int, int] = SYNTH_SIZE, cameras: int = 6
) -> Iterator[PersonSample]:
    """Render one crop per entry of ``pids`` (identities repeat across entries), from a random camera.

    The generator's identities are deterministic in ``(seed, pid)``, so the same pid looks the same (and has
    the same attributes) in every crop.
    """
    from saip_bench.synth import SynthWorld  # the generator is heavy; only writers need it

    world = SynthWorld(seed)
    rng = np.random.default_rng(seed + 1)
    identities = {}
    for pid in pids:
        pid = int(pid)
        if pid not in identities:
            identities[pid] = world.identity(pid)
        camid = int(rng.integers(1, cameras + 1))
        yield world.render_person(identities[pid], camid, size=size, rng=rng)
