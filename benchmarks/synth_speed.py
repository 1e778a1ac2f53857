"""Images per second of the synthetic person generator on one core (target: >= 100 at 256x128).

Each image carries all its ground truth: pixels, LIP part mask, COCO-17 and WholeBody-133 keypoints with
visibility, attributes, box and caption. Threads of numpy's BLAS and torch are pinned to 1 before importing.
Also reports the JPEG-encoded rate (what a dataset writer sees) and multi-person scenes per second.

Run: ``python benchmarks/synth_speed.py [--images N --size 256x128 --scenes M]``.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import io  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--ids", type=int, default=200)
    parser.add_argument("--size", default="256x128", help="HxW of the crops")
    parser.add_argument("--scenes", type=int, default=20)
    args = parser.parse_args()
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    from saip_bench.synth import SynthWorld

    h, w = (int(v) for v in args.size.split("x"))
    world = SynthWorld(0)
    rng = np.random.default_rng(0)
    for pid in range(args.ids):  # identities are drawn once per world: keep them out of the per-image time
        world.identity(pid)
    for cam in range(1, 7):
        world.render_person(world.identity(0), cam, size=(h, w), rng=rng)  # warm the per-camera caches

    t0 = time.perf_counter()
    for i in range(args.images):
        world.render_person(world.identity(i % args.ids), 1 + i % 6, size=(h, w), rng=rng)
    dt = time.perf_counter() - t0
    rate = args.images / dt
    ms = 1000 * dt / args.images
    print(f"render_person {h}x{w}, all ground truth: {rate:.1f} images/s ({ms:.2f} ms/image)")

    n = max(1, args.images // 4)
    t0 = time.perf_counter()
    for i in range(n):
        sample = world.render_person(world.identity(i % args.ids), 1 + i % 6, size=(h, w), rng=rng)
        buf = io.BytesIO()
        Image.fromarray(sample.image).save(buf, format="JPEG", quality=90)
    print(f"render_person + JPEG encode: {n / (time.perf_counter() - t0):.1f} images/s")

    t0 = time.perf_counter()
    people = 0
    for i in range(args.scenes):
        people += len(world.render_scene(2 + i % 29, size=(384, 512), rng=rng).persons)
    dt = time.perf_counter() - t0
    print(
        f"render_scene 384x512, 2-30 persons: {args.scenes / dt:.1f} scenes/s ({people / dt:.0f} persons/s)"
    )
    print(f"target >= 100 images/s: {'met' if rate >= 100 else 'NOT met'}")


if __name__ == "__main__":
    main()
