"""How much identity signal do global features carry on a Market-1501-format folder? (a diagnostic)

Frozen re-ID mAP of raw pixels averaged on grids of several sizes (1x1 = the mean colour) next to a backbone's
features (its CLS embedding, its mean patch token after the patch embedding and after every fourth block, and
its final tokens flattened), all on the same query / gallery split. It tells a probe that cannot resolve a
backbone (the features are at chance while pooled pixels are not) from data without the signal (everything at
chance). Written for the CPU study (README, "CPU learning study"): there the identity lives in the layout of a
person's colours, which any global average loses.

    python benchmarks/reid_feature_signal.py cpu-study/data/Market-1501-v15.09.15 \\
        --backbone random:saip_vit_tiny_patch16 --backbone cpu-study/runs/pretrain/saip/backbone.safetensors
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225])[:, None, None]


def load_images(items: list, size: tuple[int, int]) -> torch.Tensor:
    """``(N, 3, H, W)`` images in [0, 1], resized to ``size`` (H, W) with bicubic interpolation."""
    from PIL import Image

    out = []
    for item in items:
        with Image.open(item[0]) as im:
            im = im.convert("RGB").resize((size[1], size[0]), Image.BICUBIC)
        out.append(torch.from_numpy(np.asarray(im, dtype=np.float32) / 255.0).permute(2, 0, 1))
    return torch.stack(out)


def backbone_features(spec: str, size: tuple[int, int]) -> Callable[[torch.Tensor], dict[str, torch.Tensor]]:
    """A function from images to the named global features of the backbone ``spec`` (a ViT) at ``size``."""
    from saip_bench.backbones import load_backbone

    wrapper = load_backbone(spec, img_size=size).eval()
    vit = wrapper.model

    def tokens(x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = (x - IMAGENET_MEAN) / IMAGENET_STD
        t = vit.patch_embed(x)
        found = {"patch embedding, mean token": t.reshape(len(x), -1, t.shape[-1]).mean(1)}
        t = vit.norm_pre(vit._pos_embed(t))
        for i, block in enumerate(vit.blocks):
            t = block(t)
            if (i + 1) % 4 == 0:
                found[f"block {i + 1}, mean patch token"] = t[:, 1:].mean(1)
        t = vit.norm(t)
        found["final CLS (the embedding)"] = wrapper(x)
        found["final tokens, flattened"] = t[:, 1:].flatten(1)
        return found

    return tokens


def mean_ap(query: torch.Tensor, gallery: torch.Tensor, q: tuple, g: tuple) -> tuple[float, float]:
    """(mAP, R1) in percent, cosine distance, the Market-1501 protocol."""
    from saip_bench.tasks.reid.metrics import evaluate_rank

    query = torch.nn.functional.normalize(query.float(), dim=1)
    gallery = torch.nn.functional.normalize(gallery.float(), dim=1)
    cmc, m_ap = evaluate_rank((1 - query @ gallery.mT).numpy(), q[0], g[0], q[1], g[1])
    return 100.0 * float(m_ap), 100.0 * float(cmc[0])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("market_dir", type=Path, help="a Market-1501-v15.09.15 folder (real or synthetic)")
    p.add_argument("--backbone", action="append", default=[], help="backbone spec (repeatable), a ViT")
    p.add_argument("--size", type=int, nargs=2, default=(128, 64), metavar=("H", "W"))
    args = p.parse_args(argv)
    from saip_bench.tasks.reid.data.market1501 import load_market1501

    splits = load_market1501(args.market_dir)
    size = (int(args.size[0]), int(args.size[1]))
    ids = lambda items: (np.array([it[1] for it in items]), np.array([it[2] for it in items]))  # noqa: E731
    q_ids, g_ids = ids(splits.query), ids(splits.gallery)
    query, gallery = load_images(splits.query, size), load_images(splits.gallery, size)
    print(f"{args.market_dir}: {len(splits.query)} queries, {len(splits.gallery)} gallery images, "
          f"{len(set(q_ids[0]))} query identities; inputs {size[0]}x{size[1]}")  # fmt: skip
    for grid in ((1, 1), (2, 1), (4, 1), (8, 4), (16, 8)):
        pool = lambda x, grid=grid: torch.nn.functional.adaptive_avg_pool2d(x, grid).flatten(1)  # noqa: E731
        m_ap, r1 = mean_ap(pool(query), pool(gallery), q_ids, g_ids)
        print(f"  pixels averaged {grid[0]}x{grid[1]}: mAP {m_ap:.2f}, R1 {r1:.1f}")
    for spec in args.backbone:
        tokens = backbone_features(spec, size)
        with torch.no_grad():
            fq = [tokens(query[i : i + 64]) for i in range(0, len(query), 64)]
            fg = [tokens(gallery[i : i + 64]) for i in range(0, len(gallery), 64)]
        for name in fq[0]:
            m_ap, r1 = mean_ap(
                torch.cat([f[name] for f in fq]), torch.cat([f[name] for f in fg]), q_ids, g_ids
            )
            print(f"  {spec}: {name}: mAP {m_ap:.2f}, R1 {r1:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
