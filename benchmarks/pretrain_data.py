"""Pretraining data pipeline: images/s of one worker process (one core) making the full SAIP views.

One sample is what the paper recipe's data loader makes of one person crop: two 256x128 global views, 8
local 128x64 views (the last is global view 1 downsampled), and the 224x224 multi-person composite with its
two paste masks, its background another pretraining image. A GPU step of ViT-Tiny takes thousands of
images/s, so each CPU core (one loader worker) must deliver >= 150 images/s.

How it is measured: ``--images`` synthetic 256x128 person crops (the synthetic world's renderer, JPEG quality
90 as ``saip data synth --format lup`` writes them) go to a temporary folder; the dataset is built from the
recipe (``PretrainDataset.from_config``) as a training run builds it. With one torch thread, the timed loop
does what torch's DataLoader worker does for each batch: ``dataset.__getitems__(keys)`` for ``--batch-size``
keys of a shuffled epoch (per image: file read, decode, the views and the composite, written straight into the
batch's tensors), then ``collate_views`` (which hands that batch on). ``--per-sample`` also times, alternating
batch by batch, the sample-by-sample path (``dataset[key]`` each, then the stacking collate), and
``--compare-with GIT_REV`` the views code of an earlier revision (its ``views.py``, ``composite.py`` and
``image_ops.py``; PIL-based before issue 15; ``HEAD``: the committed code), with the ratio. Printed per path:
images over the loop's wall time; images over the process's CPU time (``time.process_time``), what one core
does when the process has it; and, since on a shared machine other processes also slow the CPU time (caches,
hypervisor), a quiet-core estimate: every batch runs ``--repeats`` times in a row, its work the same each
time, and the fastest run of each counts. The load average comes before and after. Then ``--worker-seconds``
of batches from one real DataLoader worker, timed by the worker's own CPU clock: that adds the batch's trip
through shared memory, whose fresh pages cost a page fault each (about 640 per image, as torch's
``default_collate`` costs any pipeline with batches this size). A last pass with a stopwatch around each stage
(decode, crop+resize, photometric augmentation by operation, normalisation, composite pasting) prints where
the time goes, as wall time excluding the stages nested inside; the stopwatches cost a few percent, so that
pass is not the headline figure.

Measured on the 2-vCPU development VM while other jobs ran on it, two runs back to back with
``--compare-with 63f88f4`` (load average 2.5-2.9): the loader path made 118.0 and 156.2 images/s per core of
CPU time (130.0 and 171.2 by each batch's fastest repeat), one real DataLoader worker 98.8 and 116.4; the PIL
views code it replaced 39.7 and 49.2 on the same batches, alternating: 2.98x and 3.17x. Other runs gave 66 to
150 at load 1.1-3.8: runs at the same load differ up to 2x (the neighbours slow every memory-bound pass), so
the ratio is the solid figure here, and the quiet-core rate is not known from this machine.

Then (colour runs as one blend, solarize without ``torch.where``, batch memory reused in one process),
``--compare-with HEAD`` (the views code of 13bcedc), two runs at load average 4.6 and 3.4 (other jobs
running): 1.13x and 1.13x by CPU time, 1.15x and 1.12x by each batch's fastest repeat (114.0 / 106.8 images/s
per core against 100.8 / 94.8; page faults per image 43 / 35 against 630). A real DataLoader worker still pays
about 635 page faults per image for the fresh shared memory of each batch (about 1.5 ms an image on this VM;
``madvise(MADV_POPULATE_WRITE)`` does not make it cheaper): the memory cannot be reused there, as the main
process may still hold the batch.

So the views now leave the worker as ``uint8`` (``views.output: uint8``, normalised on the training device):
a quarter of the bytes, 162 page faults per image. ``--compare-output`` times both outputs side by side, in
process (alternating batch by batch) and in real workers (alternating ``--worker-rounds`` times). Three runs
on the otherwise idle 2-vCPU VM (load average 0.7-1.3, the benchmark's own two processes), ``--seconds 20
--worker-seconds 40 --worker-rounds 4``: a worker made 112 / 108 / 101 images/s per core of CPU time with
``uint8`` against 95 / 97 / 94 with ``float32``, 1.18x / 1.11x / 1.09x; in process 0.97-0.99x (rounding
costs about what normalising did) at 127-134 images/s. A sampling profile of the worker (py-spy) finds 95%
of its time in the same views code as in process; the remaining gap to the in-process rate is that code
running slower in the worker process, not another stage.

So the photometric half can leave the worker altogether (``views.output: crops``, device_views.py): the worker
decodes, draws every parameter and resamples the ``uint8`` crops, the training device finishes the batch.
``--crops`` times that worker side by side with the recipe's finished views (in process and in real workers,
alternating) and the device half on ``--crops-device`` (here the CPU, one thread: a reference only; on a GPU,
``benchmarks/gpu.sh``). Two runs back to back on the 2-vCPU VM, nothing else running (load average 1.0-1.6:
the benchmark's own two processes), ``--seconds 20 --crops --worker-seconds 40 --worker-rounds 4``: one real
worker made **199 / 196 images/s per core** of CPU time with ``crops`` against 98 / 109 with the finished
``uint8`` views (2.04x / 1.79x), in process 268 / 281 against 120 / 125 (2.24x both); the device half cost
9.9 / 10.5 ms an image on one CPU thread, which is why it is for GPUs.

Run: ``python benchmarks/pretrain_data.py [--seconds 20] [--per-sample] [--compare-with HEAD]
[--compare-output]`` (about a minute; ``--compare-output`` with ``--worker-seconds 40`` about two).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import functools  # noqa: E402
import resource  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections import defaultdict  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.utils.data import Dataset  # noqa: E402

TARGET = 150.0  # images/s per core


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def write_crops(root: Path, n: int, size: tuple[int, int] = (256, 128), seed: int = 0) -> None:
    """``n`` synthetic person crops of ``size`` as JPEG files (quality 90) in ``root``."""
    from PIL import Image

    from saip_bench.synth import SynthWorld

    world = SynthWorld(seed)
    rng = np.random.default_rng(seed)
    for i in range(n):
        sample = world.render_person(world.identity(i % 32), 1 + i % 6, size=size, rng=rng)
        Image.fromarray(sample.image).save(root / f"{i:05d}.jpg", format="JPEG", quality=90)


def build_dataset(root: Path, recipe: str, interpolation: str, output: str | None = None):
    from saip_bench.pretrain.config import load_config
    from saip_bench.pretrain.data.dataset import PretrainDataset

    cfg = load_config(recipe, [f"views.output={output}"] if output else [])
    dataset = PretrainDataset.from_config(root, cfg, seed=0)
    dataset.views.multicrop.interpolation = interpolation
    if dataset.views.composite is not None:
        dataset.views.composite.interpolation = interpolation
    return dataset


def batches(n_images: int, batch_size: int) -> list[list[tuple[int, int]]]:
    """Keys of one epoch after another, shuffled, cut into batches (as the training sampler does)."""
    out, epoch = [], 1
    while len(out) < 10_000:
        order = np.random.default_rng(epoch).permutation(n_images)
        keys = [(epoch, int(i)) for i in order]
        out += [keys[i : i + batch_size] for i in range(0, n_images - batch_size + 1, batch_size)]
        epoch += 1
    return out


def loader_batch(dataset, keys: list[tuple[int, int]]) -> dict[str, torch.Tensor]:
    """One batch as a DataLoader worker makes it (torch's fetcher: ``__getitems__``, then the collate)."""
    from saip_bench.pretrain import views

    return views.collate_views(dataset.__getitems__(keys))


def per_sample_batch(dataset, keys: list[tuple[int, int]]) -> dict[str, torch.Tensor]:
    """One batch sample by sample (``dataset[key]`` each, then the stacking collate)."""
    from saip_bench.pretrain import views

    return views.collate_views([dataset[k] for k in keys])


def revision_pipeline(rev: str, root: Path, recipe: str, workdir: Path) -> Callable:
    """``batch(dataset, keys)`` of the views code at git revision ``rev`` (its views.py, composite.py and,
    where it has one, image_ops.py).

    For a side-by-side figure against an earlier pipeline (``--compare-with``). A revision with tensor image
    operations (issue 15 on) decodes with its own ``read_image`` and makes the batch as its dataset did
    (``make_batch`` when its views have it); an older one decodes with PIL and collates with its own
    ``collate_views``.
    """
    import importlib.util
    import subprocess
    import sys

    from PIL import Image

    from saip_bench.pretrain.config import load_config
    from saip_bench.pretrain.data.lup import list_images
    from saip_bench.pretrain.views import sample_rng

    repo = Path(__file__).resolve().parents[1]
    folder = workdir / "revision"
    folder.mkdir()
    modules = {}
    names = []
    for name in ("image_ops", "views", "composite"):
        shown = subprocess.run(
            ["git", "-C", str(repo), "show", f"{rev}:pretrain/{name}.py"], capture_output=True, text=True
        )
        if shown.returncode != 0:
            if name == "image_ops":
                continue  # before issue 15: PIL views, no tensor operations
            raise SystemExit(f"--compare-with {rev}: {shown.stderr.strip()}")
        source = shown.stdout
        for other in ("image_ops", "views"):
            source = source.replace(f"from saip_bench.pretrain.{other} import", f"from _rev_{other} import")
        (folder / f"_rev_{name}.py").write_text(source)
        names.append(name)
    sys.path.insert(0, str(folder))
    for name in names:
        spec = importlib.util.spec_from_file_location(f"_rev_{name}", folder / f"_rev_{name}.py")
        modules[name] = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = modules[name]
        spec.loader.exec_module(modules[name])
    v = load_config(recipe).views
    multicrop = modules["views"].MultiCropViews(
        global_size=tuple(v.global_size),
        local_size=tuple(v.local_size),
        global_scale=tuple(v.global_scale),
        local_scale=tuple(v.local_scale),
        ratio=tuple(v.ratio),
        local_crops_number=int(v.local_crops),
        jitter_p=float(v.color_jitter_p),
        grayscale_p=float(v.grayscale_p),
        global_solarize_p=(0.0, float(v.solarize_p)),
        local_blur_p=float(v.local_blur_p),
    )
    paths = list_images(root)
    background = modules["composite"].background_from_sequence(paths)
    maker = modules["composite"].CompositeMaker(
        background, size=tuple(v.composite_size), person_size=tuple(v.local_size), alpha=float(v.person_alpha)
    )
    views = modules["views"].SaipViews(multicrop, maker)
    collate = modules["views"].collate_views

    if "image_ops" in modules and hasattr(views, "make_batch"):
        read_image = modules["image_ops"].read_image

        def batch(dataset, keys: list[tuple[int, int]]) -> dict[str, torch.Tensor]:
            items = ((read_image(paths[i]), sample_rng(dataset.seed, e, i)) for e, i in keys)
            return collate(views.make_batch(len(keys), items))

        return batch

    def pil_batch(dataset, keys: list[tuple[int, int]]) -> dict[str, torch.Tensor]:
        samples = []
        for epoch, index in keys:
            with Image.open(paths[index]) as img:
                samples.append(views(img.convert("RGB"), sample_rng(dataset.seed, epoch, index)))
        return collate(samples)

    return pil_batch


def minor_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def run(
    paths: dict[str, Callable], dataset, keys: list[list[tuple[int, int]]], seconds: float, repeats: int = 1
) -> dict[str, tuple[int, float, float, int, float]]:
    """Alternate the ``paths`` batch by batch for ``seconds``, each batch ``repeats`` times in a row.

    A batch's work is the same every time (its views depend on its keys only), so the fastest of its
    repeats is the one least slowed by other processes: summed over the batches, an estimate of the CPU time
    on a quiet core.

    Returns:
        ``{name: (images, wall s, CPU s, page faults, CPU s of each batch's fastest repeat)}`` per path, the
        first four over every repeat.
    """
    totals = {name: [0, 0.0, 0.0, 0, 0.0] for name in paths}
    i, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        batch = keys[i % len(keys)]
        fastest = dict.fromkeys(paths, float("inf"))
        for _ in range(repeats):
            for name, make in paths.items():
                wall0, cpu0, faults0 = time.perf_counter(), time.process_time(), minor_faults()
                make(dataset, batch)
                cpu = time.process_time() - cpu0
                t = totals[name]
                t[0] += len(batch)
                t[1] += time.perf_counter() - wall0
                t[2] += cpu
                t[3] += minor_faults() - faults0
                fastest[name] = min(fastest[name], cpu)
        for name in paths:
            totals[name][4] += fastest[name]
        i += 1
    return {name: (int(t[0]), t[1], t[2], int(t[3]), t[4]) for name, t in totals.items()}


def device_half(dataset, keys: list[list[tuple[int, int]]], seconds: float, device: str = "cpu") -> str:
    """The device half of ``views.output: crops`` (``finish_views``) timed on ``device``, batch after batch,
    the batch already there: on the CPU (this process's one thread) a reference for what a GPU takes over;
    on a GPU its real cost per image (wall time between two synchronisations)."""
    from saip_bench.pretrain.views import normalize_views

    dev = torch.device(device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    images, elapsed, i = 0, 0.0, 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds or i < 3:
        batch = {k: t.to(dev) for k, t in loader_batch(dataset, keys[i % len(keys)]).items()}
        sync()
        wall0, cpu0 = time.perf_counter(), time.process_time()
        normalize_views(batch)
        sync()
        if i > 0:  # the first call warms the kernels up
            elapsed += (time.perf_counter() - wall0) if dev.type == "cuda" else (time.process_time() - cpu0)
            images += len(keys[i % len(keys)])
        i += 1
    clock = "wall time, synchronised" if dev.type == "cuda" else "CPU time, 1 thread"
    return (
        f"views.output=crops, device half (device_views.finish_views) on {device}, batches of "
        f"{len(keys[0])}: {1e3 * elapsed / images:.3f} ms per image, {images / elapsed:.0f} images/s "
        f"({images} images, {clock})"
    )


class WorkerClock(Dataset):
    """The dataset, with the worker's CPU clock and page-fault count attached to every batch it makes."""

    def __init__(self, dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitems__(self, keys: list[tuple[int, int]]):
        samples = self.dataset.__getitems__(keys)
        samples.batch["worker_cpu_s"] = torch.tensor(time.process_time(), dtype=torch.float64)
        samples.batch["worker_faults"] = torch.tensor(minor_faults())
        return samples


def run_in_workers(
    datasets: dict[str, object], keys: list[list[tuple[int, int]]], seconds: float, rounds: int = 1
) -> dict[str, tuple[int, float, float, int, float]]:
    """:func:`run_in_worker` for each dataset in turn, ``rounds`` times (``seconds / rounds`` each), summed:
    side by side, so that the machine's changing load slows each about as much."""
    totals = {name: [0, 0.0, 0.0, 0] for name in datasets}
    for _ in range(rounds):
        for name, dataset in datasets.items():
            for i, value in enumerate(run_in_worker(dataset, keys, seconds / rounds)[:4]):
                totals[name][i] += value
    return {name: (int(t[0]), t[1], t[2], int(t[3]), float("nan")) for name, t in totals.items()}


def run_in_worker(
    dataset, keys: list[list[tuple[int, int]]], seconds: float
) -> tuple[int, float, float, int, float]:
    """Batches from one real DataLoader worker (batch in shared memory, sent to this process) for ``seconds``.

    Returns:
        ``(images, wall s, worker CPU s, worker page faults, nan)`` between the first batch and the last.
    """
    from torch.utils.data import DataLoader

    from saip_bench.pretrain.views import collate_views

    loader = DataLoader(WorkerClock(dataset), batch_sampler=keys, num_workers=1, collate_fn=collate_views)
    images, first, last, start = 0, None, None, time.perf_counter()
    for batch in loader:
        if first is None:  # the worker has started and warmed up by now
            first, start = batch, time.perf_counter()
        else:
            images += batch["globals"].shape[0] // 2
        last = batch
        if time.perf_counter() - start > seconds:
            break
    cpu = float(last["worker_cpu_s"] - first["worker_cpu_s"])
    faults = int(last["worker_faults"] - first["worker_faults"])
    return images, time.perf_counter() - start, cpu, faults, float("nan")


class Stopwatch:
    """Exclusive time per stage: a stage's time excludes the stages called inside it.

    Wall clock (``perf_counter``, a fraction of a microsecond a call): ``process_time`` costs about 4 us a
    call in a VM, which on ~300 calls per image would be a fifth of what it measures.
    """

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self._stack: list[list[float]] = []

    def wrap(self, stage: str, fn: Callable) -> Callable:
        @functools.wraps(fn)
        def timed(*args, **kwargs):
            self._stack.append([time.perf_counter(), 0.0])  # [start, time of the stages inside]
            try:
                return fn(*args, **kwargs)
            finally:
                start, inner = self._stack.pop()
                took = time.perf_counter() - start
                self.seconds[stage] += took - inner
                if self._stack:
                    self._stack[-1][1] += took

        return timed


def install(watch: Stopwatch) -> list[tuple[object, str, object]]:
    """Put the stopwatch around each stage where the pipeline looks it up; returns what to put back."""
    from saip_bench.pretrain import composite, image_ops, views
    from saip_bench.pretrain.data import dataset

    del dataset  # it imports read_image from image_ops at call time
    stages = [
        ((image_ops, composite), "read_image", "decode (file read + JPEG decode), person + background"),
        ((views, composite), "resized_crop", "crop + resize (uint8, antialiased), every view + background"),
        ((views,), "channel_means", "augment: contrast means"),
        ((views,), "apply_hue", "augment: hue (with the colour operations before it)"),
        ((views,), "gaussian_blur", "augment: Gaussian blur"),
        ((views,), "colour_plane", "augment: grey"),
        ((views,), "solarize", "augment: solarize"),
        ((views,), "normalize", "to float / normalise into the output"),
        ((views,), "normalize_mapped", "to float / normalise into the output"),
        ((views,), "quantize", "round to uint8 into the output (views.output: uint8)"),
    ]
    undo = []
    for modules, name, stage in stages:
        original = getattr(modules[0], name)
        timed = watch.wrap(stage, original)
        for module in modules:
            undo.append((module, name, getattr(module, name)))
            setattr(module, name, timed)
    for cls, name, stage in (
        (image_ops.ColourMap, "apply", "augment: brightness / contrast / saturation (one blend a run)"),
        (views.PhotometricAugment, "__call__", "augment: flip, coin flips, draws"),
        (composite.CompositeMaker, "__call__", "composite: paste positions, blend, masks"),
        (views.MultiCropViews, "__call__", "views: crop boxes, small copy, allocation, glue"),
        (views.BatchMemory, "tensor", "batch tensors (allocation)"),
    ):
        undo.append((cls, name, getattr(cls, name)))
        setattr(cls, name, watch.wrap(stage, getattr(cls, name)))
    undo.append((views, "collate_views", views.collate_views))
    views.collate_views = watch.wrap("collate (the batch is made in place: a hand-over)", views.collate_views)
    return undo


def profile(dataset, keys: list[list[tuple[int, int]]], seconds: float) -> None:
    watch = Stopwatch()
    undo = install(watch)
    try:
        images, i = 0, 0
        cpu0, wall0 = time.process_time(), time.perf_counter()
        while time.perf_counter() - wall0 < seconds:
            batch = keys[i % len(keys)]
            loader_batch(dataset, batch)
            images += len(batch)
            i += 1
        total, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    finally:
        for owner, name, value in reversed(undo):
            setattr(owner, name, value)
    watch.seconds["other (dataset, sample generator, loop)"] = total - sum(watch.seconds.values())
    print(
        f"\nwhere the time goes, loader path with a stopwatch per stage ({images} images, "
        f"{total / images * 1e3:.2f} ms wall, {cpu / images * 1e3:.2f} ms CPU per image):"
    )
    for stage, sec in sorted(watch.seconds.items(), key=lambda kv: -kv[1]):
        print(f"  {sec / images * 1e3:6.3f} ms  {100 * sec / total:5.1f}%  {stage}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=20.0, help="timed wall seconds (after a warm-up)")
    p.add_argument("--warmup-seconds", type=float, default=2.0, help="untimed batches first")
    p.add_argument(
        "--repeats", type=int, default=3,
        help="runs of each batch in a row; the fastest gives the quiet-core estimate",
    )  # fmt: skip
    p.add_argument("--profile-seconds", type=float, default=8.0, help="0: skip the per-stage profile")
    p.add_argument("--images", type=int, default=64, help="synthetic 256x128 JPEG crops to cycle through")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--recipe", default="saip_lup1m_8gpu", help="pretraining recipe whose views are made")
    p.add_argument("--interpolation", default="bicubic", choices=["bicubic", "bilinear"])
    p.add_argument(
        "--per-sample", action="store_true",
        help="also time the sample-by-sample path (dataset[key] each, then the stacking collate)",
    )  # fmt: skip
    p.add_argument(
        "--compare-with", metavar="GIT_REV", default=None,
        help="also time the views code of this revision (HEAD, or 63f88f4: PIL-based), alternating",
    )  # fmt: skip
    p.add_argument(
        "--worker-seconds", type=float, default=10.0,
        help="also time one real DataLoader worker for this long (its own CPU clock); 0: skip",
    )  # fmt: skip
    p.add_argument(
        "--compare-output", action="store_true",
        help="also time the views stored as the other views.output (float32 / uint8), alternating, in "
        "process and in a real worker",
    )  # fmt: skip
    p.add_argument(
        "--crops", action="store_true",
        help="also time views.output=crops (the worker's half: decode, crops, draws), alternating, in "
        "process and in a real worker, and the device half (device_views.finish_views) on this CPU",
    )  # fmt: skip
    p.add_argument(
        "--crops-device", default="cpu", help="with --crops: where to time the device half (cpu, cuda)"
    )
    p.add_argument(
        "--worker-rounds", type=int, default=1,
        help="with --compare-output: alternate the workers this many times (--worker-seconds in all, each)",
    )  # fmt: skip
    args = p.parse_args(argv)
    torch.set_num_threads(1)

    with tempfile.TemporaryDirectory(prefix="saip-data-bench-") as tmp:
        root = Path(tmp) / "LUP"
        root.mkdir()
        write_crops(root, args.images)
        dataset = build_dataset(root, args.recipe, args.interpolation)
        keys = batches(len(dataset), args.batch_size)
        sample = dataset[keys[0][0]]
        print(
            f"views per sample ({args.recipe}, {args.interpolation}): "
            + ", ".join(
                f"{k} {tuple(v.shape)} {str(v.dtype).removeprefix('torch.')}" for k, v in sample.items()
            )
        )
        paths = {"loader (__getitems__ + collate)": loader_batch}
        workers = {"in a DataLoader worker (batch in shared memory)": dataset}
        pairs: list[tuple[str, str]] = []  # (ours, the other output), in process and in a worker
        if args.compare_output:
            other = "float32" if dataset.views.multicrop.dtype == torch.uint8 else "uint8"
            other_set = build_dataset(root, args.recipe, args.interpolation, output=other)
            label = f"views.output={other}"
            paths[f"loader, {label}"] = lambda _dataset, keys: loader_batch(other_set, keys)
            workers[f"in a DataLoader worker, {label}"] = other_set
            pairs = [(next(iter(paths)), f"loader, {label}")]
            if args.worker_seconds > 0:
                pairs.append(tuple(workers))
        if args.crops:
            crops_set = build_dataset(root, args.recipe, args.interpolation, output="crops")
            label = "views.output=crops"
            paths[f"loader, {label}"] = lambda _dataset, keys: loader_batch(crops_set, keys)
            workers[f"in a DataLoader worker, {label}"] = crops_set
            pairs.append((f"loader, {label}", next(iter(paths))))
            if args.worker_seconds > 0:
                pairs.append((f"in a DataLoader worker, {label}", next(iter(workers))))
        if args.per_sample:
            paths["per sample (__getitem__ x B + stacking collate)"] = per_sample_batch
        if args.compare_with:
            paths[f"views code at {args.compare_with}"] = revision_pipeline(
                args.compare_with, root, args.recipe, Path(tmp)
            )
        run(paths, dataset, keys, args.warmup_seconds)  # allocator, caches
        load_before = load_average()
        results = run(paths, dataset, keys, args.seconds, args.repeats)
        if args.worker_seconds > 0:
            rounds = args.worker_rounds if args.compare_output or args.crops else 1
            results.update(run_in_workers(workers, keys, args.worker_seconds, rounds))
        print(
            f"one process, 1 thread, batches of {args.batch_size}; in-process paths alternating, each batch "
            f"{args.repeats}x in a row:"
        )
        for name, (images, wall, cpu, faults, best_cpu) in results.items():
            line = (
                f"  {name}: {images / wall:.1f} images/s wall, {images / cpu:.1f} images/s per core of CPU "
                f"time ({images} images, {wall:.1f} s wall, {cpu:.1f} s CPU, {faults / images:.0f} page "
                "faults per image)"
            )
            if best_cpu == best_cpu:  # not nan: the in-process paths
                quiet = images / args.repeats / best_cpu
                verdict = "met" if quiet >= TARGET else "NOT met"
                line += (
                    f"; {quiet:.1f} images/s per core from each batch's fastest repeat (quiet-core "
                    f"estimate); target >= {TARGET:.0f}: {verdict}"
                )
            print(line)
        if args.compare_with:
            ours = results["loader (__getitems__ + collate)"]
            theirs = results[f"views code at {args.compare_with}"]
            print(
                f"loader path / views code at {args.compare_with}: {theirs[2] / ours[2]:.2f}x by CPU time, "
                f"{theirs[4] / ours[4]:.2f}x by each batch's fastest repeat (same batches, alternating)"
            )
        for mine, theirs in pairs:
            ratio = results[theirs][2] / results[theirs][0] / (results[mine][2] / results[mine][0])
            print(f"{mine} / {theirs}: {ratio:.2f}x by CPU time per image (alternating)")
        print(f"load average (1, 5, 15 min) before: {load_before}, after: {load_average()}")
        if args.crops:  # after the load average: the line gpu.sh's summary shows
            print(device_half(crops_set, keys, args.seconds / 4, args.crops_device))
        if args.profile_seconds > 0:
            profile(dataset, keys, args.profile_seconds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
