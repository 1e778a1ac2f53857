"""Fashionpedia's fixed facts: its folder, its two splits' files, and the 46 categories (ids 0-45).

The 46 categories have ids 0-45: 27 main apparel categories (ids 0-26) and 19 apparel parts (27-45), listed
here as the release's json lists them. The reader is :mod:`.fashionpedia`, the check
:mod:`.fashionpedia_check`, the synthetic writer :mod:`.synth`.
"""

from __future__ import annotations

from typing import Any

FOLDER = "Fashionpedia"
#: split -> (annotation file, image folder). The release puts validation images in ``test/``.
SPLITS: dict[str, tuple[str, str]] = {
    "train": ("instances_attributes_train2020.json", "train"),
    "val": ("instances_attributes_val2020.json", "test"),
}

_SUPERS = (
    ("upperbody", 6),
    ("lowerbody", 3),
    ("wholebody", 4),
    ("head", 3),
    ("neck", 1),
    ("arms and hands", 2),
    ("waist", 1),
    ("legs and feet", 4),
    ("others", 3),
    ("garment parts", 7),
    ("closures", 2),
    ("decorations", 10),
)
_NAMES = (
    "shirt, blouse", "top, t-shirt, sweatshirt", "sweater", "cardigan", "jacket", "vest", "pants", "shorts",
    "skirt", "coat", "dress", "jumpsuit", "cape", "glasses", "hat", "headband, head covering, hair accessory",
    "tie", "glove", "watch", "belt", "leg warmer", "tights, stockings", "sock", "shoe", "bag, wallet",
    "scarf",
    "umbrella", "hood", "collar", "lapel", "epaulette", "sleeve", "pocket", "neckline", "buckle", "zipper",
    "applique", "bead", "bow", "flower", "fringe", "ribbon", "rivet", "ruffle", "sequin", "tassel",
)  # fmt: skip
#: The 46 categories as the release's json lists them: ids 0-45 in this order.
CATEGORIES: tuple[dict[str, Any], ...] = tuple(
    {"id": i, "name": name, "supercategory": sup}
    for i, (name, sup) in enumerate(zip(_NAMES, [s for s, n in _SUPERS for _ in range(n)], strict=True))
)
NUM_APPAREL = 27  # ids 0-26 are whole garments, 27-45 garment parts, closures and decorations
