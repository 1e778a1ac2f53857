"""Has the self-distillation head of a pretraining checkpoint taken off, or is it collapsed? (a diagnostic)

For a ``saip pretrain`` checkpoint of a method with an image-level distillation term (SAIP's CSM, DINO), the
teacher's and the student's prototype distributions on person crops (each crop resized to the recipe's input
size), as DINO's paper reads them:

- ``mean H(p_i)``: the entropy of each image's distribution, averaged; near log K the head assigns nothing
  (uniform collapse);
- ``H(mean p)``: the entropy of the batch's mean distribution; near 0 every image gets the same prototypes
  (one-hot collapse);
- their difference, the mutual information between image and prototype: what the head tells images apart
  by (0 = collapsed either way; at most log K);
- how many distinct prototypes are the argmax over the images.

The teacher's logits are centred with the loss's running centre and sharpened with ``teacher_temp``, the
student's divided by ``student_temp``, as in the loss. Written for the CPU study (README, "CPU learning
study").

    python benchmarks/csm_head_state.py cpu-study/runs/pretrain/saip/checkpoint.pt --images cpu-study/data/LUP
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

import torch

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def load_branch(
    model: dict[str, torch.Tensor], config: dict[str, Any], side: str
) -> tuple[torch.nn.Module, torch.nn.Module]:
    """``side`` (``teacher`` or ``student``) of the checkpoint: its ViT and projection head, in eval mode."""
    import timm

    import saip_bench.backbones  # noqa: F401 (registers the SAIP ViTs with timm)
    from saip_bench.pretrain.heads import ProjectionHead

    def part(prefix: str) -> dict[str, torch.Tensor]:
        return {k[len(prefix) :]: v for k, v in model.items() if k.startswith(prefix)}

    heads = config["heads"]
    vit = timm.create_model(config["model"]["arch"], img_size=tuple(config["model"]["img_size"]))
    missing, unexpected = vit.load_state_dict(part(f"{side}.vit."), strict=False)
    if unexpected or [k for k in missing if not k.startswith("head")]:
        raise SystemExit(f"{side}.vit does not match {config['model']['arch']}: missing {missing[:3]}")
    proj = ProjectionHead(
        vit.embed_dim, int(heads["out_dim"]), hidden_dim=int(heads["hidden_dim"]),
        bottleneck_dim=int(heads["bottleneck_dim"]), norm_last_layer=bool(heads.get("norm_last_layer", True)),
    )  # fmt: skip
    proj.load_state_dict(part(f"{side}.proj."))
    return vit.eval(), proj.eval()


def head_state(probs: torch.Tensor) -> dict[str, float]:
    """The collapse measures of ``(N, K)`` prototype distributions (nats; see the module's docstring)."""
    per_image = -(probs * torch.log(probs.clamp_min(1e-12))).sum(-1).mean()
    mean = probs.mean(0)
    of_mean = -(mean * torch.log(mean.clamp_min(1e-12))).sum()
    return {
        "mean H(p_i)": float(per_image),
        "H(mean p)": float(of_mean),
        "mutual information": float(of_mean - per_image),
        "distinct argmax": float(len(set(probs.argmax(-1).tolist()))),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint", type=Path, nargs="+", help="a saip or dino run's checkpoint.pt")
    p.add_argument("--images", type=Path, required=True, help="a folder of person crops (LUP format)")
    p.add_argument("--count", type=int, default=256, help="crops, spread evenly over the sorted folder")
    args = p.parse_args(argv)
    from PIL import Image

    from saip_bench.evaluate.images import eval_transform

    if not args.images.is_dir():
        raise SystemExit(f"{args.images}: not a folder of person crops")
    files = sorted(f for f in args.images.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise SystemExit(f"{args.images}: no .jpg/.png person crops")
    files = files[:: max(1, len(files) // args.count)][: args.count]
    crops = []
    for file in files:
        with Image.open(file) as im:
            crops.append(im.convert("RGB"))
    for path in args.checkpoint:
        state = torch.load(path, map_location="cpu", weights_only=False)
        config, model = state["config"], state["model"]
        center = next((v for k, v in model.items() if k.endswith("_loss.center")), None)
        if center is None or not any(k.startswith("teacher.proj.") for k in model):
            raise SystemExit(f"{path}: no distillation head (a saip or dino checkpoint has one)")
        temps = config.get("csm") or {}
        transform = eval_transform(tuple(config["model"]["img_size"]))  # each run's own input size
        x = torch.stack([transform(crop) for crop in crops])
        K = int(config["heads"]["out_dim"])
        print(f"{path} (step {state.get('step')}): {len(files)} crops, K = {K} (log K {math.log(K):.2f})")
        for side in ("teacher", "student"):
            vit, proj = load_branch(model, config, side)
            with torch.no_grad():
                logits = proj(vit.forward_features(x)[:, 0]).float()
            if side == "teacher":
                probs = torch.softmax((logits - center) / float(temps.get("teacher_temp", 0.04)), dim=-1)
            else:
                probs = torch.softmax(logits / float(temps.get("student_temp", 0.1)), dim=-1)
            found = head_state(probs)
            print(f"  {side}: " + ", ".join(
                f"{k} {v:.0f}" if k == "distinct argmax" else f"{k} {v:.2f}" for k, v in found.items()
            ))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
