"""Pretraining step benchmark at the original recipe's shapes, alone or side by side with the public code.

Prints seconds per optimiser step, images/s, model FLOPs per image (counted with
``torch.utils.flop_counter.FlopCounterMode`` over one forward + backward), the achieved rate against this
machine's matmul rate (CPU) or the GPU's bf16 dense peak (MFU, CUDA), peak RSS and peak CUDA memory.
Defaults: SAIP, ViT-Tiny/16, 256x128 globals, 8 local views 128x64, 224x224 composite, 65,536 prototypes,
batch 8, fp32, 2 threads, CPU.

    python benchmarks/pretrain_step.py                                  # saip-bench alone
    python benchmarks/pretrain_step.py --reference ~/src/SAIPv1         # side by side with the public code
    python benchmarks/pretrain_step.py --reference ~/src/SAIPv1 --only reference   # its peak RSS alone
    python benchmarks/pretrain_step.py --precision bf16 --reference ~/src/SAIPv1
    python benchmarks/pretrain_step.py --device cuda --precision bf16 --batch-size 64

Side by side (``--reference DIR``, a checkout of stoa-xh91/SAIPv1): one process; one batch of views made
once by our ``PretrainDataset`` and collate, handed to the public code as its list of per-view tensors, so
both see the same pixels; one warm-up step each, one FLOP-counting step each, then timed steps alternating
reference, ours, reference, ours, ...; data loading is not timed. The public code runs from a patched
temporary copy (``benchmarks/saipv1_reference.py`` lists every changed line) and always in fp32, whatever
``--precision`` says for ours. The ratio is ours' images/s over the reference's. In one process the peak RSS
is that of both together; ``--only ours`` / ``--only reference`` measure one side in a process of its own.
The last line, ``summary: key=value ...``, is for scripts (``benchmarks/gpu.sh``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

# bf16 dense tensor-core peak (TFLOPS, no sparsity) by a substring of torch.cuda.get_device_name(); the
# first match wins, so the more specific names come first.
GPU_BF16_PEAK_TFLOPS: tuple[tuple[str, float], ...] = (
    ("H100 PCIe", 756.0),
    ("H100", 989.4),  # SXM
    ("H200", 989.4),
    ("A100", 312.0),
    ("L40S", 362.0),
    ("RTX 4090", 165.0),
)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_rate(device: torch.device, dtype: torch.dtype, seconds: float = 2.0) -> float:
    """Peak GFLOP/s of square matmuls on this device (best of several timed batches)."""
    n = 1024 if device.type == "cpu" else 8192
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(2):
        a @ b
    sync(device)
    best, deadline = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        reps = 4
        t0 = time.perf_counter()
        for _ in range(reps):
            a @ b
        sync(device)
        best = max(best, 2 * n**3 * reps / (time.perf_counter() - t0) / 1e9)
    return best


def gpu_bf16_peak(device: torch.device) -> tuple[float, str]:
    """``(GFLOP/s, where from)``: the table's bf16 dense peak for this GPU, else a measured bf16 matmul."""
    name = torch.cuda.get_device_name(device)
    for key, tflops in GPU_BF16_PEAK_TFLOPS:
        if key in name:
            return tflops * 1e3, f"{name}: {tflops} TFLOPS bf16 dense (datasheet)"
    rate = matmul_rate(device, torch.bfloat16)
    return rate, f"{name}: not in the table; measured bf16 matmul {rate / 1e3:.1f} TFLOPS used as the peak"


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # KiB on Linux


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def count_flops(fn: Callable[[], object]) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def progress(what: str, fn: Callable[[], object]):
    """Run ``fn``, telling stderr how long it took (a full-size CPU step takes seconds)."""
    t0 = time.perf_counter()
    value = fn()
    print(f"[pretrain_step] {what}: {time.perf_counter() - t0:.2f} s", file=sys.stderr, flush=True)
    return value


def timing_line(name: str, times: list[float], batch: int) -> str:
    sec = statistics.median(times)
    return (
        f"{name}: {sec:.3f} s/step, {batch / sec:.3f} images/s (median of {len(times)}; fastest "
        f"{min(times):.3f} s = {batch / min(times):.3f} images/s; "
        f"all: {', '.join(f'{t:.3f}' for t in times)})"
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--method", default="saip", choices=["saip", "mae", "dino"])
    p.add_argument("--batch-size", type=int, default=None, help="8 (--tiny: 4)")
    p.add_argument("--local-crops", type=int, default=8)
    p.add_argument("--out-dim", type=int, default=None, help="prototypes: 65536 (--tiny: 1024)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=3, help="timed steps per side (after warm-up and FLOP count)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16"], help="ours (the reference: fp32)")
    p.add_argument(
        "--reference", type=Path, default=None, metavar="DIR",
        help="a checkout of stoa-xh91/SAIPv1: time it side by side with ours (patched in a temporary copy)",
    )  # fmt: skip
    p.add_argument(
        "--only", choices=["ours", "reference"], default=None,
        help="run one side alone (its own peak RSS); 'reference' needs --reference",
    )  # fmt: skip
    p.add_argument(
        "--override", action="append", default=[], metavar="KEY=VALUE",
        help="extra pretraining config override for ours (repeatable), e.g. model.lean_mlp=false",
    )  # fmt: skip
    p.add_argument("--compile", action="store_true", help="torch.compile ours' blocks, heads (train.compile)")
    p.add_argument(
        "--tiny", action="store_true",
        help="small views, decoder and head (a quick check of the script; the public code runs at them too)",
    )  # fmt: skip
    p.add_argument(
        "--malloc-mmap-threshold-mb", type=float, default=None,
        help="as train.malloc_mmap_threshold_mb in a CPU run (0, the default: leave glibc's adaptive "
        "threshold alone); the process-wide setting applies to the reference too",
    )  # fmt: skip
    args = p.parse_args(argv)
    if args.only == "reference" and args.reference is None:
        p.error("--only reference needs --reference DIR")
    if args.batch_size is None:
        args.batch_size = 4 if args.tiny else 8
    if args.out_dim is None:
        args.out_dim = 1024 if args.tiny else 65536
    args.run_ours = args.only != "reference"
    args.run_ref = args.reference is not None and args.only != "ours"
    if args.malloc_mmap_threshold_mb is None:
        args.malloc_mmap_threshold_mb = 0.0
    return args


class Ours:
    """saip-bench's training step: forward, backward, clip, fused AdamW, EMA (as the trainer runs them).

    Weight decay, betas and clipping come from the config (``--override train.clip_grad=null``: none).
    """

    def __init__(self, cfg, spec, batch: dict[str, torch.Tensor], device: torch.device, precision: str):
        from saip_bench.engine import autocast_context, build_optimizer, weight_decay_groups
        from saip_bench.pretrain.meta_arch import MetaArch

        torch.manual_seed(0)
        self.model = MetaArch.from_config(cfg, spec).to(device).train()
        t = cfg.train
        self.optimizer = build_optimizer(
            weight_decay_groups([self.model.student], float(t.weight_decay)),
            lr=1e-4,
            betas=tuple(float(b) for b in t.betas),
            fused=True,
        )
        self.clip = float(t.clip_grad or 0.0)
        self.batch, self.device, self.precision = batch, device, precision
        self._autocast = autocast_context
        self.n = 0

    def forward_backward(self) -> torch.Tensor:
        with self._autocast(self.device, self.precision):
            out = self.model(self.batch, self.n)
        out["loss"].backward()
        return out["loss"]

    def step(self) -> float:
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.forward_backward()
        if self.clip:
            torch.nn.utils.clip_grad_norm_(self.model.student.parameters(), self.clip)
        self.optimizer.step()
        self.model.update_teacher(0.996)
        sync(self.device)
        self.n += 1
        return float(loss.detach())

    def flops(self) -> int:
        """Model FLOPs of one forward + backward (not the optimiser's elementwise work)."""
        self.optimizer.zero_grad(set_to_none=True)
        flops = count_flops(self.forward_backward)
        self.optimizer.zero_grad(set_to_none=True)
        return flops


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.malloc_mmap_threshold_mb and args.device == "cpu":
        from saip_bench.pretrain.engine.cpu_memory import set_mmap_threshold

        set_mmap_threshold(args.malloc_mmap_threshold_mb)

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    from saip_bench.pretrain import methods
    from saip_bench.pretrain.data.dataset import PretrainDataset, micro_batches
    from saip_bench.pretrain.data.lup import write_synth
    from saip_bench.pretrain.engine.run import build_config
    from saip_bench.pretrain.views import normalize_views

    overrides = [
        f"train.batch_size={args.batch_size}", f"views.local_crops={args.local_crops}",
        f"heads.out_dim={args.out_dim}", "train.num_workers=0",
    ]  # fmt: skip
    if args.tiny:
        # Globals x1.25 stay on the patch grid (the public CSR asserts it); two 32x32 pastes fit 96x96; the
        # public encoder reads block 7 (index 6), so 7 blocks at least.
        overrides += [
            "model.img_size=[64,64]", "views.global_size=[64,64]", "views.local_size=[32,32]",
            "views.composite_size=[96,96]", "model.embed_dim=64", "model.depth=7", "model.num_heads=2",
            "heads.csr_decoder_depth=1", "heads.csr_decoder_dim=64", "heads.csr_decoder_heads=2",
            "heads.hidden_dim=256",
        ]  # fmt: skip
    cfg = build_config(None, method=args.method, overrides=overrides + list(args.override))
    spec = methods.resolve(cfg.method, cfg.objectives, dict(cfg.loss))
    if args.run_ref and spec.name != "saip":
        raise SystemExit(f"--reference times the public SAIP code; --method {args.method} has no counterpart")
    mm_dtype = torch.float32 if args.precision == "fp32" else torch.bfloat16
    mm_seconds = 0.5 if args.tiny else 2.0
    rate = matmul_rate(device, mm_dtype, mm_seconds) if device.type == "cpu" else None
    load_before = load_average()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "LUP"
        write_synth(root, ids=4, images=args.batch_size * 2, seed=0)
        dataset = PretrainDataset.from_config(root, cfg, seed=0, spec=spec)
        t0 = time.perf_counter()
        # the loader's uint8 views, normalised as the model would: both sides get the same float tensors
        cpu_batch = normalize_views(next(micro_batches(dataset, batch_size=args.batch_size, seed=0)))
        data_s = time.perf_counter() - t0
    batch = {k: v.to(device) for k, v in cpu_batch.items()}

    sides: dict[str, Callable[[], float]] = {}
    flops: dict[str, int] = {}
    with contextlib.ExitStack() as stack:
        if args.run_ref:
            sys.path.insert(0, str(Path(__file__).resolve().parent))
            import saipv1_reference as R

            from saip_bench.pretrain.encoder import create_vit

            m = cfg.model
            geometry = {k: m[k] for k in ("embed_dim", "depth", "num_heads") if m[k]}
            vit = create_vit(str(m.arch), img_size=tuple(m.img_size), **geometry)  # ours' encoder numbers
            encoder = (vit.embed_dim, len(vit.blocks), vit.blocks[0].attn.num_heads)
            del vit

            ref_modules = stack.enter_context(R.load_reference(args.reference))
            ref = R.ReferenceStep(
                ref_modules,
                img_size=tuple(cfg.views.global_size),
                encoder=encoder,
                local_crops=args.local_crops,
                out_dim=args.out_dim,
                decoder_dim=int(cfg.heads.csr_decoder_dim),
                decoder_depth=int(cfg.heads.csr_decoder_depth),
                decoder_heads=int(cfg.heads.csr_decoder_heads),
                norm_pix=bool(cfg.mask.norm_pix),
                mask_ratio=float(cfg.mask.ratio),
                device=device,
            )
            samples = [s.to(device) for s in R.samples_from_batch(cpu_batch)]

            def ref_step() -> float:
                loss = ref.step(samples)
                sync(device)
                return loss

            sides["reference"] = ref_step
        if args.run_ours:
            ours = Ours(cfg, spec, batch, device, args.precision)
            if args.compile:  # as train.compile=true; the warm-up step below then includes the compiling
                from saip_bench.pretrain.engine.compile import compile_model

                compile_model(ours.model)
            sides["ours"] = ours.step

        for name, step in sides.items():  # warm-up (allocations, caches, the reference's lazy set-up)
            progress(f"{name}: warm-up step", step)
        if args.run_ref:  # a full step; only matmuls, convs and attention count
            flops["reference"] = progress("reference: FLOP count", lambda: count_flops(sides["reference"]))
        if args.run_ours:
            flops["ours"] = progress("ours: FLOP count", ours.flops)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        times: dict[str, list[float]] = {name: [] for name in sides}
        for _ in range(args.steps):
            for name, step in sides.items():  # alternating: reference, ours, reference, ours, ...
                t0 = time.perf_counter()
                step()
                times[name].append(time.perf_counter() - t0)
                print(
                    f"[pretrain_step] {name}: timed step {times[name][-1]:.2f} s", file=sys.stderr, flush=True
                )

    if device.type == "cpu":
        # The machine is shared: measure the matmul rate again after the steps and keep the better figure.
        rate = max(rate, matmul_rate(device, mm_dtype, mm_seconds))
        peak, peak_from = rate, f"this machine's {args.precision} matmul rate, measured in this run"
    else:
        peak, peak_from = gpu_bf16_peak(device)
    b = args.batch_size
    summary: dict[str, str] = {"device": device.type, "precision": args.precision, "batch": str(b)}

    print(
        f"device {device} ({args.precision}), {args.threads} threads, "
        f"method {spec.name} ({','.join(spec.terms)})"
    )
    print(
        f"shapes: batch {b}, globals {tuple(cfg.views.global_size)}, {args.local_crops} locals "
        f"{tuple(cfg.views.local_size)}, composite {tuple(cfg.views.composite_size)}, "
        f"{args.out_dim} prototypes"
    )
    print(f"load average (1/5/15 min) before: {load_before}; after: {load_average()}; {os.cpu_count()} CPUs")
    print(f"data: {data_s:.2f} s for one batch (not in the step time)")
    if args.run_ref:
        print(f"reference: the public SAIPv1 code from {args.reference} (patched copy, fp32)")
    print(f"peak for the achieved fraction: {peak:.1f} GFLOP/s ({peak_from})")
    for name, label in (
        ("reference", "reference (public code, fp32)"),
        ("ours", f"saip-bench ({args.precision})"),
    ):
        if name not in times:
            continue
        sec = statistics.median(times[name])
        print(timing_line(label, times[name], b))
        achieved = flops[name] / sec / 1e9
        print(
            f"  FLOP per image per step: {flops[name] / b / 1e9:.1f} G; achieved {achieved:.1f} GFLOP/s "
            f"= {achieved / peak:.1%} of the peak above" + (" (MFU)" if device.type == "cuda" else "")
        )
        key = "ref" if name == "reference" else "ours"
        summary[f"{key}_s_per_step"] = f"{sec:.4f}"
        summary[f"{key}_images_per_s"] = f"{b / sec:.3f}"
        summary[f"{key}_gflop_per_image"] = f"{flops[name] / b / 1e9:.2f}"
        summary[f"{key}_peak_fraction"] = f"{achieved / peak:.4f}"
    if "ours" in times:
        with_data = b / (statistics.median(times["ours"]) + data_s)
        print(
            "saip-bench images/s with this batch's view making in series (no loader workers): "
            f"{with_data:.3f}"
        )
    if len(times) == 2:
        ratio = statistics.median(times["reference"]) / statistics.median(times["ours"])
        pairs = sorted(r / o for r, o in zip(times["reference"], times["ours"], strict=True))
        print(
            f"ratio saip-bench / reference images/s: {ratio:.2f}x (medians; per alternating pair "
            f"{pairs[0]:.2f}-{pairs[-1]:.2f}x)"
        )
        summary["ratio"] = f"{ratio:.3f}"
    rss = peak_rss_gb()
    fixed = args.malloc_mmap_threshold_mb and device.type == "cpu"
    allocator = f"glibc mmap threshold {args.malloc_mmap_threshold_mb} MB" if fixed else "glibc default"
    whose = {"ours": "saip-bench alone", "reference": "the reference alone"}.get(args.only or "", "")
    if len(sides) == 2:
        whose = "both implementations in one process; --only ours / --only reference for each alone"
    print(f"peak RSS: {rss:.2f} GB ({whose or 'saip-bench alone'}; {allocator})")
    summary["peak_rss_gb"] = f"{rss:.2f}"
    if device.type == "cuda":
        cuda_gb = torch.cuda.max_memory_allocated(device) / 1024**3
        print(f"peak CUDA memory (timed steps): {cuda_gb:.2f} GB")
        summary["peak_cuda_gb"] = f"{cuda_gb:.2f}"
    print("summary: " + " ".join(f"{k}={v}" for k, v in summary.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
