"""``load_backbone(spec)``: a checkpoint path, ``random:NAME[@SEED]``, ``timm:NAME[=WEIGHTS]`` -> Backbone."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import timm
import torch
from torch import nn

from saip_bench.backbones.wrapper import Backbone
from saip_bench.errors import CheckpointError, ConfigError
from saip_bench.io import digest_obj, random_init_digest

log = logging.getLogger(__name__)

RANDOM_SEED = 0  # the untrained reference row must be the same network on every machine
SPEC_HELP = "a checkpoint path, random:NAME[@SEED] or timm:NAME[=LOCAL_WEIGHTS]"


def parse_random_spec(spec: str) -> tuple[str, int | None] | None:
    """``random:NAME`` -> ``(NAME, None)``, ``random:NAME@SEED`` -> ``(NAME, SEED)``; None for other specs.

    Raises:
        ConfigError: SEED is not a non-negative integer.
    """
    spec = spec.strip()
    if not spec.startswith("random:"):
        return None
    name, at, seed = spec.split(":", 1)[1].partition("@")
    if not at:
        return name, None
    if not (seed.isascii() and seed.isdigit()):  # also refuses "", "-1", "1.5"
        raise ConfigError(f"backbone {spec!r}: the init seed after '@' must be an integer >= 0, got {seed!r}")
    return name, int(seed)


def follows_run_seed(spec: str) -> bool:
    """Whether ``spec`` is ``random:NAME`` without ``@SEED``: campaigns and ``saip evaluate`` initialise it
    with the run's seed (``load_backbone(spec, seed=...)``), so repeating seeds also repeats the init."""
    parsed = parse_random_spec(spec)
    return parsed is not None and parsed[1] is None


def saip_arch_names() -> list[str]:
    """The SAIP entrypoints registered with timm."""
    return sorted(timm.list_models("saip_*"))


def create_model(arch: str, img_size: tuple[int, int], *, seed: int | None = RANDOM_SEED) -> nn.Module:
    """``timm.create_model(arch)`` headless at ``img_size``, seeded without touching the global RNG.

    Raises:
        ConfigError: ``arch`` is not a timm model.
    """
    if not timm.is_model(arch):
        raise ConfigError(
            f"unknown backbone architecture {arch!r}; SAIP ones: {', '.join(saip_arch_names())} "
            "(or any name in timm.list_models())"
        )
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        try:
            return timm.create_model(arch, pretrained=False, num_classes=0, img_size=img_size)
        except TypeError:  # convnets and other models without an img_size argument
            return timm.create_model(arch, pretrained=False, num_classes=0)


def load_backbone(
    spec: str,
    *,
    img_size: tuple[int, int] = (256, 128),
    device: torch.device | str | None = None,
    arch: str | None = None,
    branch: str = "teacher",
    allow_missing: Iterable[str] = (),
    allow_unexpected: Iterable[str] = (),
    seed: int | None = None,
) -> Backbone:
    """Build the backbone a CLI ``--backbone`` value names, in eval mode.

    Args:
        spec: A checkpoint path (ours, SAIPv1, MAE, DINO or a timm state dict), ``random:NAME`` (an
            untrained reference row: initialised with ``seed``, by default seed 0), ``random:NAME@SEED``
            (initialised with SEED whatever ``seed`` says; named so in reports) or ``timm:NAME`` with
            optional local weights ``timm:NAME=PATH`` (.safetensors/.pth/.bin; nothing is downloaded).
        img_size: ``(H, W)`` inputs; a ViT's ``pos_embed`` is resampled in 2-D to it.
        device: Where to put the module (None: stays on the CPU).
        arch: Architecture of a foreign checkpoint (default: ours records it; otherwise guessed).
        branch: ``teacher`` or ``student`` of a SAIPv1/DINO checkpoint.
        allow_missing: fnmatch patterns of backbone keys a checkpoint may lack.
        allow_unexpected: fnmatch patterns of checkpoint keys to ignore.
        seed: The init seed of a ``random:NAME`` without ``@SEED`` (campaigns and ``saip evaluate`` pass
            the run's seed, so its reference row varies with the seed like the probes do); None: seed 0.
            Every seed is one network: its digest, not its name, tells them apart, so the records of all
            seeds are one report row. Other specs ignore it.

    Raises:
        CheckpointError: Missing, unreadable or mismatched weights.
        ConfigError: An unknown architecture, a bad ``@SEED`` or an img_size that is not a multiple of the
            patch size.
    """
    from saip_bench.checkpoints import load_weights_into

    img_size = (int(img_size[0]), int(img_size[1]))
    spec = spec.strip()
    if not spec:
        raise ConfigError(f"empty backbone spec; expected {SPEC_HELP}")
    random = parse_random_spec(spec)
    if random is not None:
        name, fixed = random
        init = fixed if fixed is not None else RANDOM_SEED if seed is None else int(seed)
        model = create_model(name, img_size, seed=init)
        meta: dict[str, Any] = {"arch": name, "method": "random", "source": spec, "seed": init}
        backbone = Backbone(
            model,
            name=spec,
            arch=name,
            img_size=img_size,
            meta=meta,
            # random:NAME@S and random:NAME at seed S are the same weights, so one digest; seed 0's is the
            # digest random:NAME always had, so the records made before seeds varied the init stay valid.
            digest=random_init_digest(name, init),
        )
    elif spec.startswith("timm:"):
        name, _, weights = spec.split(":", 1)[1].partition("=")
        model = create_model(name, img_size)
        meta = {"arch": name, "method": "random", "source": spec, "seed": RANDOM_SEED}
        if weights:
            if not Path(weights).is_file():
                raise CheckpointError(
                    f"{weights}: no such file; timm weights cannot be downloaded here, "
                    f"pass a local file as timm:{name}=PATH/weights.safetensors|.pth|.bin"
                )
            # The filter drops the model's classifier (pretrained_cfg["classifier"]); all else is strict.
            report = load_weights_into(
                model,
                weights,
                arch=name,
                branch=branch,
                allow_missing=allow_missing,
                allow_unexpected=allow_unexpected,
            )
            meta = {**report.meta_for_backbone(), "arch": name, "source": spec}
            digest = report.digest
            log.info("%s: loaded %d tensors (%s layout)", weights, len(report.loaded), report.layout)
        else:
            log.warning("%s: no local weights given, the network is randomly initialised (seed 0)", spec)
            digest = digest_obj({"spec": spec, "seed": RANDOM_SEED})
        backbone = Backbone(
            model,
            name=spec.split("=", 1)[0] if not weights else f"timm:{name}={Path(weights).stem}",
            arch=name,
            img_size=img_size,
            meta=meta,
            digest=digest,
        )
    else:
        backbone = _from_path(Path(spec), img_size, arch, branch, allow_missing, allow_unexpected)
    backbone.eval()
    if device is not None:
        backbone.to(device)
    return backbone


def _from_path(
    path: Path,
    img_size: tuple[int, int],
    arch: str | None,
    branch: str,
    allow_missing: Iterable[str],
    allow_unexpected: Iterable[str],
) -> Backbone:
    from saip_bench.checkpoints import load_weights_into, read_any_checkpoint

    if not path.exists() and not path.with_suffix(".safetensors").exists():
        raise CheckpointError(f"{path}: no such checkpoint file (a backbone is {SPEC_HELP})")
    found = read_any_checkpoint(path, branch=branch)
    arch = arch or found.arch
    model = create_model(arch, img_size)
    report = load_weights_into(
        model, found, arch=arch, allow_missing=allow_missing, allow_unexpected=allow_unexpected
    )
    log.info("%s: %s layout, %d tensors loaded into %s", path, report.layout, len(report.loaded), arch)
    name = path.with_suffix("").name if path.suffix in (".safetensors", ".json") else path.name
    if name == "backbone":  # a pretraining export (RUN_DIR/backbone.safetensors): the run names it
        name = path.resolve().parent.name
    return Backbone(
        model, name=name, arch=arch, img_size=img_size, meta=report.meta_for_backbone(), digest=report.digest
    )
