"""`saip convert`: any supported backbone checkpoint -> our safetensors + JSON format."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from saip_bench.cli.common import console, user_errors


@user_errors
def convert(
    *,
    src: Annotated[
        Path,
        typer.Argument(
            metavar="IN", help="Checkpoint to read: SAIPv1, MAE, DINO, timm, OpenMMLab (mmengine), or ours."
        ),
    ],
    dst: Annotated[
        Path,
        typer.Argument(
            metavar="OUT", help="Output weights path (.safetensors; a .json sidecar goes beside it)."
        ),
    ],
    arch: Annotated[
        str | None,
        typer.Option("--arch", help="timm architecture (default: recorded, or guessed from the keys)."),
    ] = None,
    img_size: Annotated[
        str | None, typer.Option("--img-size", help="HEIGHTxWIDTH to resample pos_embed to, e.g. 256x128.")
    ] = None,
    branch: Annotated[
        str, typer.Option("--branch", help="teacher (default) or student weights of a SAIPv1/DINO file.")
    ] = "teacher",
) -> None:
    """Convert a backbone checkpoint into saip-bench's format, loading it strictly on the way."""
    from saip_bench.checkpoints.convert import convert_checkpoint, parse_img_size

    size = parse_img_size(img_size) if img_size else None
    report = convert_checkpoint(src, dst, arch=arch, img_size=size, branch=branch)
    branch_note = f", {report.branch} branch" if report.branch else ""
    console.print(
        f"detected [bold]{report.layout}[/] checkpoint ({report.method}{branch_note}) in {src}",
        soft_wrap=True,
    )
    console.print(
        f"loaded {report.keys_loaded} backbone tensors into {report.arch} at "
        f"{report.img_size[0]}x{report.img_size[1]}; dropped {len(report.keys_dropped)} non-backbone keys",
        soft_wrap=True,
    )
    console.print(
        f"wrote {report.weights} and {report.metadata.name} (digest {report.digest})", soft_wrap=True
    )
