"""SAIP TinyViT-5M entrypoint for timm, accepting the person-crop input sizes."""

from __future__ import annotations

from typing import Any

from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from timm.models.tiny_vit import TinyVit

from saip_bench.backbones.vit import PERSON_IMG_SIZE, check_img_size, person_cfg

# The patch embedding and three patch-merging steps halve the map each; any multiple of 32 gives whole
# maps at every stage (windows are padded by timm), and smaller multiples of 16 still run.
TINY_VIT_STRIDE = 32

default_cfgs = generate_default_cfgs(
    {"saip_tiny_vit_5m": person_cfg(first_conv="patch_embed.conv1.conv", classifier="head.fc")}
)


@register_model
def saip_tiny_vit_5m(pretrained: bool = False, **kwargs: Any) -> TinyVit:
    """TinyViT-5M (dims 64/128/160/320, depths 2/2/6/2, heads 2/4/5/10, windows 7/7/14/7).

    timm's TinyVit has no ``img_size`` argument (its windows pad any map), so ``img_size`` is
    validated, recorded on the model and in its pretrained_cfg, and not passed on.
    """
    from saip_bench.checkpoints.foreign import checkpoint_filter_fn

    img_size = check_img_size(kwargs.pop("img_size", PERSON_IMG_SIZE), 16)
    model_args = {
        "embed_dims": (64, 128, 160, 320),
        "depths": (2, 2, 6, 2),
        "num_heads": (2, 4, 5, 10),
        "window_sizes": (7, 7, 14, 7),
        "drop_path_rate": 0.0,
        "num_classes": 0,
    }
    out_indices = kwargs.pop("out_indices", (0, 1, 2, 3))
    model = build_model_with_cfg(
        TinyVit,
        "saip_tiny_vit_5m",
        pretrained,
        pretrained_filter_fn=checkpoint_filter_fn,
        feature_cfg={"flatten_sequential": True, "out_indices": out_indices},
        **dict(model_args, **kwargs),
    )
    model.img_size = img_size
    model.pretrained_cfg["input_size"] = (3, *img_size)
    return model
