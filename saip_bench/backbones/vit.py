"""SAIP ViT entrypoints for timm: the entrypoint holds only the architecture numbers."""

from __future__ import annotations

from typing import Any

from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from timm.models.vision_transformer import VisionTransformer

from saip_bench.errors import ConfigError

PERSON_IMG_SIZE = (256, 128)


def person_cfg(**kwargs: Any) -> dict[str, Any]:
    """timm's pretrained config of a SAIP backbone at the person-crop size (``kwargs`` override keys).

    No url, file or hub id: nothing is ever downloaded; local weights go through load_backbone.
    """
    return {
        "url": "",
        "num_classes": 0,
        "input_size": (3, *PERSON_IMG_SIZE),
        "pool_size": None,
        "crop_pct": 1.0,
        "interpolation": "bicubic",
        "mean": IMAGENET_DEFAULT_MEAN,
        "std": IMAGENET_DEFAULT_STD,
        "first_conv": "patch_embed.proj",
        "classifier": "head",
        "license": "apache-2.0",
        **kwargs,
    }


# timm's @register_model reads this module-level dict, so it must exist before the entrypoints.
default_cfgs = generate_default_cfgs({"saip_vit_tiny_patch16": person_cfg()})


def vit_map_indices(depth: int) -> tuple[int, int, int, int]:
    """Blocks whose outputs are the four dense maps: (3, 5, 7, 11) for 12 blocks, same fractions otherwise."""
    return depth // 3 - 1, depth // 2 - 1, 2 * depth // 3 - 1, depth - 1


def check_img_size(img_size: Any, patch: int) -> tuple[int, int]:
    """Normalise ``img_size`` to ``(H, W)`` and require both sides to be multiples of the patch size."""
    size = (img_size, img_size) if isinstance(img_size, int) else tuple(int(s) for s in img_size)
    if len(size) != 2 or size[0] % patch or size[1] % patch or min(size) <= 0:
        raise ConfigError(f"img_size {img_size} must be two positive multiples of the patch size {patch}")
    return size  # type: ignore[return-value]


def _create_saip_vit(variant: str, pretrained: bool = False, **kwargs: Any) -> VisionTransformer:
    from saip_bench.checkpoints.foreign import checkpoint_filter_fn

    kwargs["img_size"] = check_img_size(kwargs.get("img_size", PERSON_IMG_SIZE), kwargs["patch_size"])
    out_indices = kwargs.pop("out_indices", vit_map_indices(kwargs["depth"]))
    model = build_model_with_cfg(
        VisionTransformer,
        variant,
        pretrained,
        pretrained_filter_fn=checkpoint_filter_fn,
        feature_cfg={"out_indices": out_indices, "feature_cls": "getter"},
        **kwargs,
    )
    # timm keeps the registered default here; data configs (resolve_data_config) should see the real size.
    if isinstance(getattr(model, "pretrained_cfg", None), dict):
        model.pretrained_cfg["input_size"] = (3, *kwargs["img_size"])
    return model


@register_model
def saip_vit_tiny_patch16(pretrained: bool = False, **kwargs: Any) -> VisionTransformer:
    """ViT-Tiny/16 (192-d, 12 blocks, 3 heads) for 256x128 person crops; any size that is a multiple of 16.

    ``dynamic_img_size`` lets pretraining feed global, local and enlarged views to one module; the
    position embedding is then resampled in 2-D on the fly.
    """
    model_args = {
        "img_size": PERSON_IMG_SIZE,
        "patch_size": 16,
        "embed_dim": 192,
        "depth": 12,
        "num_heads": 3,
        "num_classes": 0,
        "dynamic_img_size": True,
    }
    return _create_saip_vit("saip_vit_tiny_patch16", pretrained, **dict(model_args, **kwargs))
