"""The parsing data path and loss: eval letterbox round trip, flip swap, balanced CE / OHEM, and learning."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from saip_bench.datasets import DATASETS
from saip_bench.errors import ConfigError
from saip_bench.tasks.parsing.adapter import ParsingAdapter
from saip_bench.tasks.parsing.data import IGNORE_INDEX, lip
from saip_bench.tasks.parsing.images import ParsingImages, fit_size, letterbox
from saip_bench.tasks.parsing.loss import balanced_weights, check_loss, ohem_mask, parsing_loss


def test_letterbox_keeps_the_aspect_and_crops_back_to_the_label() -> None:
    label = np.zeros((60, 30), np.uint8)
    label[10:50, 5:25] = 5  # a "person" box
    image = Image.fromarray(np.stack([label * 40] * 3, -1))
    size = (48, 48)
    assert fit_size(60, 30, size) == (48, 24)
    x = letterbox(image, size)
    assert x.shape == (3, 48, 48) and torch.all(x[:, :, 24:] == 0)  # padding right of the fitted image
    # the image channel itself as "logits" of two classes, cropped and upsampled as the adapter does
    fg = (x[0] > (x[0].min() + x[0].max()) / 2).float()
    logit = torch.stack([1 - fg, fg])[None]
    h, w = fit_size(*label.shape, size)
    up = F.interpolate(logit[:, :, :h, :w], size=label.shape, mode="bilinear", align_corners=False)[0]
    agree = (up.argmax(0).numpy() == (label > 0)).mean()
    assert agree > 0.97


def test_train_flip_swaps_left_and_right_labels(tmp_path: Path) -> None:
    label = np.zeros((40, 40), np.uint8)
    label[:, :20] = 14  # left-arm on the image's left half
    image = np.zeros((40, 40, 3), np.uint8)
    image[:, :20] = 255
    Image.fromarray(image).save(tmp_path / "a.jpg")
    Image.fromarray(label, mode="L").save(tmp_path / "a.png")
    data = ParsingImages([tmp_path / "a.jpg"], [tmp_path / "a.png"], (40, 40), train=True,
                         scale_range=(1.0, 1.0), flip=1.0)  # fmt: skip
    x, y = data[0]
    assert set(torch.unique(y).tolist()) == {0, 15}  # left-arm became right-arm ...
    assert (y[:, 20:] == 15).all() and (x[0, :, 20:] > x[0, :, :20]).all()  # ... on the mirrored side


def test_balanced_weights_and_ohem() -> None:
    targets = torch.zeros(1, 10, 10, dtype=torch.long)
    targets[0, :1, :1] = 3
    targets[0, 9] = IGNORE_INDEX
    w = balanced_weights(targets, 20)
    assert w[3] > 10 * w[0] and math.isclose(float(w[0]), 1 / math.log(1.02 + 89 / 90), rel_tol=1e-5)
    logits = torch.zeros(1, 20, 10, 10)
    logits[0, 0] = 5.0  # every pixel confidently background: only the part pixel is hard
    keep = ohem_mask(logits, targets, thresh=0.7, min_kept=1)
    assert keep.sum() == 1 and keep[0, 0, 0]
    assert parsing_loss(logits, torch.full_like(targets, IGNORE_INDEX), name="ohem") == 0
    for name in ("ce", "ohem", "balanced"):
        assert torch.isfinite(parsing_loss(logits, targets, name=name, min_kept=5))
    # ce is plain cross-entropy over the labelled pixels
    expected = F.cross_entropy(logits, targets, ignore_index=IGNORE_INDEX)
    torch.testing.assert_close(parsing_loss(logits, targets, name="ce"), expected)


def test_smoke_training_beats_the_untrained_head(tmp_path: Path, parsing_request) -> None:
    """A short linear run with balanced CE learns part classes: mIoU above the untrained (lr 0) head's."""
    from saip_bench.backbones import load_backbone

    root = tmp_path / lip.FOLDER
    DATASETS.get("lip").write_synth(root, ids=4, images=24, seed=0)
    size = (64, 64)

    def run(lr: float) -> dict[str, float]:
        recipe = {
            "head": {"pyramid_channels": 32, "head_channels": 32}, "loader": {"batch_size": 6},
            "data": {"workers": 0}, "eval": {"batch_size": 6}, "augment": {"scale_range": [0.8, 1.25]},
            "loss": {"name": "balanced"}, "train": {"epochs": 10, "lr": lr, "weight_decay": 0.0},
        }  # fmt: skip
        backbone = load_backbone("random:saip_vit_tiny_patch16", img_size=size)
        request = parsing_request(root, tmp_path / f"run{lr}", "linear", recipe, size)
        return ParsingAdapter().run(request, backbone).metrics

    untrained, trained = run(0.0), run(3e-3)
    parts = [k for k, v in trained.items() if k.startswith("IoU.") and k != "IoU.background" and v > 0]
    assert trained["mIoU"] > untrained["mIoU"] + 1.0
    assert len(parts) >= 2, parts


def test_bad_loss_settings_are_config_errors() -> None:
    good = {"thresh": 0.7, "min_kept": 10, "balance_c": 1.02}
    check_loss("ohem", **good)  # no error
    with pytest.raises(ConfigError, match="loss.name"):
        check_loss("focal", **good)
    with pytest.raises(ConfigError, match="balance_c"):
        check_loss("balanced", **{**good, "balance_c": 1.0})
    with pytest.raises(ConfigError, match="thresh"):
        check_loss("ohem", **{**good, "thresh": 0.0})
