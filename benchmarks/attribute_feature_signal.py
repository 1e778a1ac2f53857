"""How much attribute signal do a backbone's features carry on a PA-100K-format folder? (a diagnostic)

The suite's linear attribute probe (a Linear -> BatchNorm1d head on cached frozen features, the
positive-ratio weighted BCE, AdamW on a cosine schedule: ``saip_bench.evaluate.linear.train_head``), trained
on ``trainval`` and scored on ``test`` (label-based mA, %), on several readouts of the same images: raw pixels
averaged on grids, and for each backbone its CLS embedding (what ``saip evaluate --protocol linear`` reads),
the mean patch token, and the final patch tokens pooled on a 4x2 grid and flattened on their full grid. Each
readout is probed at 200 steps (the study's smoke budget) and 2,000 (the recipe's full budget). It tells a
probe that cannot read a backbone (global features at chance while pooled pixels are not) from a backbone
that learned nothing. Written for the CPU study (README, "CPU learning study"), where the attributes (a hat,
a bag, the sleeve length) sit in one part of the crop, which a global average loses.

    python benchmarks/attribute_feature_signal.py cpu-study/data/PA-100K \\
        --backbone random:saip_vit_tiny_patch16 --backbone cpu-study/runs/pretrain/saip/backbone.safetensors
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

STEPS = (200, 2000)


def load_images(paths: list[Path], labels: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """``(N, 3, H, W)`` images as the linear protocol reads them (the task's dataset, the evaluation
    transform)."""
    from saip_bench.evaluate.images import eval_transform
    from saip_bench.tasks.attribute.images import AttributeImages

    images = AttributeImages(paths, labels, eval_transform(size))
    return torch.stack([images[i][0] for i in range(len(images))])


def backbone_readouts(spec: str, size: tuple[int, int]) -> Callable[[torch.Tensor], dict[str, torch.Tensor]]:
    """A function from images to the named readouts of the ViT ``spec`` at ``size``."""
    from saip_bench.backbones import load_backbone

    wrapper = load_backbone(spec, img_size=size).eval()
    vit = wrapper.model
    grid = (size[0] // wrapper.patch_size, size[1] // wrapper.patch_size)

    def readouts(x: torch.Tensor) -> dict[str, torch.Tensor]:
        tokens = vit.forward_features(x)
        patches = tokens[:, vit.num_prefix_tokens :]
        maps = patches.transpose(1, 2).reshape(len(x), -1, *grid)
        return {
            "CLS (the embedding)": vit.forward_head(tokens, pre_logits=True),
            "mean patch token": patches.mean(1),
            "patch tokens, 4x2 grid": F.adaptive_avg_pool2d(maps, (4, 2)).flatten(1),
            f"patch tokens, {grid[0]}x{grid[1]} flattened": patches.flatten(1),
        }

    return readouts


def pixel_readouts(x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Raw pixels averaged on grids (1x1 = the mean colour)."""
    grids = ((1, 1), (8, 4), (16, 8))
    return {f"pixels {g[0]}x{g[1]}": F.adaptive_avg_pool2d(x, g).flatten(1) for g in grids}


def probe_ma(train: torch.Tensor, train_y: np.ndarray, test: torch.Tensor, test_y: np.ndarray,
             pos_ratio: np.ndarray, steps: int, seed: int) -> float:  # fmt: skip
    """mA (%) of the suite's linear attribute head trained ``steps`` steps on ``train``, on ``test``."""
    from saip_bench.evaluate.linear import train_head
    from saip_bench.tasks.attribute.losses import WeightedBCELoss
    from saip_bench.tasks.attribute.metrics import pedestrian_metrics
    from saip_bench.tasks.attribute.model import AttributeHead

    torch.manual_seed(seed)
    head = AttributeHead(train.shape[1], train_y.shape[1], bn=True)
    criterion = WeightedBCELoss(pos_ratio)
    targets = torch.as_tensor(train_y, dtype=torch.float32)
    train_head(head, lambda h, rows: criterion(h(train[rows]), targets[rows]), len(train), steps=steps,
               lr=1e-3, weight_decay=0.0, batch_size=512, seed=seed)  # fmt: skip
    with torch.no_grad():
        scores = torch.sigmoid(head(test)).numpy()
    return 100.0 * float(pedestrian_metrics(test_y, scores, threshold=0.5)["mA"])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("pa100k_dir", type=Path, help="a PA-100K folder, real or synthetic")
    p.add_argument("--backbone", action="append", default=[], help="backbone spec (repeatable), a ViT")
    p.add_argument("--size", type=int, nargs=2, default=(128, 64), metavar=("H", "W"))
    p.add_argument("--seed", type=int, default=0, help="the head's init and batch order")
    p.add_argument("--probe-steps", type=int, nargs="+", default=list(STEPS), help="head steps, each probed")
    args = p.parse_args(argv)
    from saip_bench.tasks.attribute.data import pa100k

    data = pa100k.load(args.pa100k_dir)
    size = (int(args.size[0]), int(args.size[1]))
    (train_paths, train_y), (test_paths, test_y) = data.split("trainval"), data.split("test")
    train_x, test_x = load_images(train_paths, train_y, size), load_images(test_paths, test_y, size)
    steps = " / ".join(map(str, args.probe_steps))
    print(f"{args.pa100k_dir}: {len(train_paths)} trainval, {len(test_paths)} test images, "
          f"{data.num_attrs} attributes; inputs {size[0]}x{size[1]}; mA at {steps} probe steps")  # fmt: skip

    def report(label: str, fn: Callable[[torch.Tensor], dict[str, torch.Tensor]]) -> None:
        with torch.no_grad():
            parts = [[fn(x[i : i + 128]) for i in range(0, len(x), 128)] for x in (train_x, test_x)]
        for name in parts[0][0]:
            train, test = (torch.cat([part[name] for part in chunks]).float() for chunks in parts)
            scores = [
                probe_ma(train, train_y, test, test_y, data.pos_ratio, n, args.seed) for n in args.probe_steps
            ]
            print(f"  {label}{name}: mA {' / '.join(f'{s:.2f}' for s in scores)}", flush=True)

    report("", pixel_readouts)
    for spec in args.backbone:
        report(f"{spec}: ", backbone_readouts(spec, size))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
