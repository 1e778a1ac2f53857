"""Attribute names (PA-100K, PETA), the colour palette, and drawing an identity's appearance.

An appearance is a plain dict (picklable) that fixes everything a person looks like; the attribute dicts are
derived from it, so an attribute is True exactly when the renderer draws the thing it names.
"""

from __future__ import annotations

import numpy as np

#: PA-100K's 26 attributes, in the dataset's order.
PA100K_ATTRIBUTES: tuple[str, ...] = (
    "Female", "AgeOver60", "Age18-60", "AgeLess18", "Front", "Side", "Back", "Hat", "Glasses", "HandBag",
    "ShoulderBag", "Backpack", "HoldObjectsInFront", "ShortSleeve", "LongSleeve", "UpperStride", "UpperLogo",
    "UpperPlaid", "UpperSplice", "LowerStripe", "LowerPattern", "LongCoat", "Trousers", "Shorts",
    "Skirt&Dress", "boots",
)  # fmt: skip

#: PETA's 35 evaluated attributes (the PETA-zs / Rethinking_of_PAR order).
PETA_ATTRIBUTES: tuple[str, ...] = (
    "accessoryHat", "accessoryMuffler", "accessoryNothing", "accessorySunglasses", "hairLong",
    "upperBodyCasual", "upperBodyFormal", "upperBodyJacket", "upperBodyLogo", "upperBodyPlaid",
    "upperBodyShortSleeve", "upperBodyThinStripes", "upperBodyTshirt", "upperBodyOther", "upperBodyVNeck",
    "lowerBodyCasual", "lowerBodyFormal", "lowerBodyJeans", "lowerBodyShorts", "lowerBodyShortSkirt",
    "lowerBodyTrousers", "footwearLeatherShoes", "footwearSandals", "footwearShoes", "footwearSneaker",
    "carryingBackpack", "carryingOther", "carryingMessengerBag", "carryingNothing", "carryingPlasticBags",
    "personalLess30", "personalLess45", "personalLess60", "personalLarger60", "personalMale",
)  # fmt: skip

#: Attributes that change with the camera (the viewpoint); every other attribute is fixed per identity.
VIEW_ATTRIBUTES: tuple[str, ...] = ("Front", "Side", "Back")

#: Named colours: the caption says the name of the colour the renderer paints (with a small jitter).
PALETTE: dict[str, tuple[int, int, int]] = {
    "black": (28, 28, 30), "white": (236, 236, 232), "gray": (128, 128, 128), "red": (196, 34, 38),
    "blue": (40, 80, 190), "navy": (30, 38, 88), "green": (46, 140, 60), "yellow": (230, 200, 40),
    "brown": (120, 76, 40), "pink": (236, 140, 170), "purple": (120, 50, 150), "orange": (236, 120, 30),
    "khaki": (190, 170, 120), "light blue": (140, 190, 230),
}  # fmt: skip
_COLOURS = tuple(PALETTE)
HAIR_COLOURS: dict[str, tuple[int, int, int]] = {
    "black": (22, 18, 16), "brown": (92, 58, 34), "blond": (210, 180, 110), "red": (150, 60, 30),
    "gray": (150, 150, 150), "white": (225, 225, 220),
}  # fmt: skip
SKIN_TONES: tuple[tuple[int, int, int], ...] = (
    (255, 220, 190),
    (240, 195, 160),
    (220, 170, 130),
    (190, 135, 95),
    (150, 100, 65),
    (105, 70, 45),
)
UPPER_TYPES = ("tshirt", "shirt", "sweater", "vneck", "jacket", "suit")
LOWER_TYPES = ("trousers", "jeans", "shorts", "skirt", "dress")
SHOE_TYPES = ("shoes", "sneakers", "leather", "boots", "sandals")
BAG_TYPES = ("backpack", "shoulder", "handbag", "plastic")


def _colour(rng: np.random.Generator, names: tuple[str, ...] = _COLOURS, avoid: str | None = None) -> dict:
    choices = [n for n in names if n != avoid]
    name = choices[int(rng.integers(len(choices)))]
    base = np.asarray(PALETTE[name], dtype=np.int32)
    rgb = np.clip(base + rng.integers(-14, 15, size=3), 0, 255)
    return {"name": name, "rgb": tuple(int(v) for v in rgb)}


def _pick(rng: np.random.Generator, options: tuple, probs: tuple[float, ...]) -> object:
    p = np.asarray(probs, dtype=np.float64)
    return options[int(rng.choice(len(options), p=p / p.sum()))]


def sample_appearance(rng: np.random.Generator) -> dict:
    """Draw one identity's complete appearance: body, clothes, accessories."""
    female = bool(rng.random() < 0.45)
    age = int(
        _pick(
            rng,
            (int(rng.integers(8, 18)), int(rng.integers(18, 60)), int(rng.integers(60, 85))),
            (0.1, 0.78, 0.12),
        )
    )
    child, old = age < 18, age >= 60
    hair_long = bool(rng.random() < (0.75 if female else 0.08))
    if old:
        hair_name = "white" if rng.random() < 0.5 else "gray"
    else:
        hair_name = str(
            _pick(
                rng,
                ("black", "brown", "blond", "red", "gray"),
                (0.5, 0.3, 0.12, 0.05, 0.5 if age >= 45 else 0.0),
            )
        )
    skin = SKIN_TONES[int(rng.integers(len(SKIN_TONES)))]
    body = {
        "height": float(rng.uniform(0.72, 0.8) if child else rng.uniform(0.9, 1.0)),
        "head": float(rng.uniform(0.15, 0.17) if child else rng.uniform(0.12, 0.135)),
        "shoulder": float(rng.uniform(0.085, 0.095) if female else rng.uniform(0.1, 0.115)),
        "hip": float(rng.uniform(0.072, 0.082) if female else rng.uniform(0.062, 0.07)),
        "build": float(rng.uniform(0.85, 1.25)),
        "stoop": float(rng.uniform(0.03, 0.07) if old else 0.0),
    }
    formal = bool(not child and rng.random() < 0.12)
    lower_type = (
        "trousers"
        if formal
        else str(_pick(rng, LOWER_TYPES, (0.3, 0.3, 0.14, 0.16 if female else 0.0, 0.1 if female else 0.0)))
    )
    upper_type = "suit" if formal else str(_pick(rng, UPPER_TYPES[:5], (0.3, 0.18, 0.14, 0.14, 0.14)))
    if lower_type == "dress":
        upper_type = "dress"
    upper = {"type": upper_type, "colour": _colour(rng), "pattern": "plain", "logo": False}
    upper["colour2"] = _colour(rng, avoid=upper["colour"]["name"])
    if upper_type == "suit":
        upper["colour"] = _colour(rng, ("black", "navy", "gray"))
        upper["colour2"] = {"name": "white", "rgb": PALETTE["white"]}
    if upper_type in ("tshirt", "shirt", "sweater", "vneck"):
        upper["pattern"] = str(_pick(rng, ("plain", "stripes", "plaid", "splice"), (0.55, 0.17, 0.13, 0.15)))
    if upper_type in ("tshirt", "sweater", "jacket") and upper["pattern"] in ("plain", "splice"):
        upper["logo"] = bool(rng.random() < 0.35)
    upper["logo_colour"] = _colour(rng, avoid=upper["colour"]["name"])
    upper["period"] = float(rng.uniform(0.018, 0.03))
    if upper_type == "tshirt" or upper_type == "dress":
        upper["sleeve"] = "short"
    elif upper_type == "vneck":
        upper["sleeve"] = "short" if rng.random() < 0.5 else "long"
    else:
        upper["sleeve"] = "long"
    coat = None
    if not child and upper_type != "suit" and rng.random() < 0.1:
        coat = {"colour": _colour(rng, ("black", "brown", "khaki", "gray", "navy", "red"))}
    lower = {"type": lower_type, "colour": _colour(rng), "pattern": "plain"}
    if formal:
        lower["colour"] = upper["colour"]
    elif lower_type == "jeans":
        lower["colour"] = _colour(rng, ("blue", "navy", "light blue", "black"))
    elif lower_type == "dress":
        lower["colour"] = upper["colour"]
    lower["colour2"] = _colour(rng, avoid=lower["colour"]["name"])
    if lower_type in ("trousers", "shorts", "skirt") and not formal:
        lower["pattern"] = str(_pick(rng, ("plain", "stripe", "pattern"), (0.75, 0.13, 0.12)))
    if formal:
        shoe_type = "leather"
    else:
        shoe_type = str(
            _pick(
                rng,
                SHOE_TYPES,
                (
                    0.3,
                    0.3,
                    0.12,
                    0.18 if lower_type != "shorts" else 0.0,
                    0.1 if lower_type in ("shorts", "skirt", "dress") else 0.0,
                ),
            )
        )
    shoe_colour = _colour(rng, ("black", "brown", "white", "gray", "navy", "red", "khaki"))
    if shoe_type == "sneakers":
        shoe_colour = _colour(rng, ("white", "black", "gray", "red", "blue"))
    shoes = {"type": shoe_type, "colour": shoe_colour}
    socks = None
    if lower_type in ("shorts", "skirt") and shoe_type in ("shoes", "sneakers") and rng.random() < 0.5:
        socks = {"colour": _colour(rng, ("white", "black", "gray"))}
    hat = None
    if rng.random() < 0.14:
        hat = {"type": str(_pick(rng, ("cap", "beanie", "brim"), (0.5, 0.3, 0.2))), "colour": _colour(rng)}
    glasses = str(_pick(rng, ("none", "glasses", "sunglasses"), (0.8, 0.12, 0.08 if not child else 0.0)))
    muffler = {"colour": _colour(rng)} if (not child and rng.random() < 0.07) else None
    gloves = _colour(rng, ("black", "brown", "gray")) if (coat and rng.random() < 0.3) else None
    bags: list[dict] = []
    if rng.random() < 0.55:
        first = str(_pick(rng, BAG_TYPES, (0.35, 0.3, 0.25 if female else 0.08, 0.1)))
        bags.append(
            {"type": first, "colour": _colour(rng), "side": "left" if rng.random() < 0.5 else "right"}
        )
        if rng.random() < 0.15:
            second = "handbag" if first != "handbag" else "plastic"
            side = "right" if bags[0]["side"] == "left" else "left"
            bags.append({"type": second, "colour": _colour(rng), "side": side})
    hold = None
    if not any(b["type"] in ("handbag", "plastic") for b in bags) and rng.random() < 0.08:
        hold = {"colour": _colour(rng, ("brown", "white", "khaki", "red", "blue"))}
    return {
        "female": female,
        "age": age,
        "hair": {"long": hair_long, "colour": {"name": hair_name, "rgb": HAIR_COLOURS[hair_name]}},
        "skin": skin,
        "body": body,
        "upper": upper,
        "coat": coat,
        "lower": lower,
        "shoes": shoes,
        "socks": socks,
        "hat": hat,
        "glasses": glasses,
        "muffler": muffler,
        "gloves": gloves,
        "bags": bags,
        "hold": hold,
        "stride": float(rng.uniform(0.2, 0.45)),
        "arm_swing": float(rng.uniform(0.15, 0.4)),
    }


def identity_attributes(app: dict) -> dict[str, bool]:
    """PA-100K and PETA attributes (all but the viewpoint) implied by an appearance."""
    up, low, coat, age = app["upper"], app["lower"], app["coat"], app["age"]
    bag_types = {b["type"] for b in app["bags"]}
    short_sleeve = up["sleeve"] == "short" and coat is None
    formal = up["type"] == "suit"
    a = {
        "Female": app["female"],
        "AgeOver60": age >= 60,
        "Age18-60": 18 <= age < 60,
        "AgeLess18": age < 18,
        "Hat": app["hat"] is not None,
        "Glasses": app["glasses"] != "none",
        "HandBag": bool(bag_types & {"handbag", "plastic"}),
        "ShoulderBag": "shoulder" in bag_types,
        "Backpack": "backpack" in bag_types,
        "HoldObjectsInFront": app["hold"] is not None,
        "ShortSleeve": short_sleeve,
        "LongSleeve": not short_sleeve,
        "UpperStride": coat is None and up["pattern"] == "stripes",
        "UpperLogo": coat is None and up["logo"],
        "UpperPlaid": coat is None and up["pattern"] == "plaid",
        "UpperSplice": coat is None and up["pattern"] == "splice",
        "LowerStripe": low["pattern"] == "stripe",
        "LowerPattern": low["pattern"] == "pattern",
        "LongCoat": coat is not None,
        "Trousers": low["type"] in ("trousers", "jeans"),
        "Shorts": low["type"] == "shorts",
        "Skirt&Dress": low["type"] in ("skirt", "dress"),
        "boots": app["shoes"]["type"] == "boots",
    }
    hat, muffler, sunglasses = (
        app["hat"] is not None,
        app["muffler"] is not None,
        app["glasses"] == "sunglasses",
    )
    p = {
        "accessoryHat": hat,
        "accessoryMuffler": muffler,
        "accessorySunglasses": sunglasses,
        "accessoryNothing": not (hat or muffler or sunglasses),
        "hairLong": app["hair"]["long"],
        "upperBodyCasual": not formal,
        "upperBodyFormal": formal,
        "upperBodyJacket": coat is not None or up["type"] == "jacket",
        "upperBodyLogo": a["UpperLogo"],
        "upperBodyPlaid": a["UpperPlaid"],
        "upperBodyShortSleeve": short_sleeve,
        "upperBodyThinStripes": a["UpperStride"],
        "upperBodyTshirt": coat is None and up["type"] == "tshirt",
        "upperBodyOther": coat is None and up["type"] in ("sweater", "dress"),
        "upperBodyVNeck": coat is None and up["type"] == "vneck",
        "lowerBodyCasual": not formal,
        "lowerBodyFormal": formal,
        "lowerBodyJeans": low["type"] == "jeans",
        "lowerBodyShorts": low["type"] == "shorts",
        "lowerBodyShortSkirt": low["type"] in ("skirt", "dress"),
        "lowerBodyTrousers": low["type"] in ("trousers", "jeans"),
        "footwearLeatherShoes": app["shoes"]["type"] == "leather",
        "footwearSandals": app["shoes"]["type"] == "sandals",
        "footwearShoes": app["shoes"]["type"] in ("shoes", "boots"),
        "footwearSneaker": app["shoes"]["type"] == "sneakers",
        "carryingBackpack": "backpack" in bag_types,
        "carryingOther": "handbag" in bag_types or app["hold"] is not None,
        "carryingMessengerBag": "shoulder" in bag_types,
        "carryingPlasticBags": "plastic" in bag_types,
        "personalLess30": age < 30,
        "personalLess45": 30 <= age < 45,
        "personalLess60": 45 <= age < 60,
        "personalLarger60": age >= 60,
        "personalMale": not app["female"],
    }
    p["carryingNothing"] = not (bag_types or app["hold"] is not None)
    out = {k: bool(v) for k, v in a.items()}
    out.update({k: bool(v) for k, v in p.items()})
    return out


def view_attributes(view: str) -> dict[str, bool]:
    """The PA-100K viewpoint one-hot for ``view`` in {"front", "side", "back"}."""
    return {"Front": view == "front", "Side": view == "side", "Back": view == "back"}


def view_of(yaw: float) -> str:
    """PA-100K viewpoint of a yaw in degrees: front within 45 degrees of 0, back of 180, else side."""
    d = yaw % 360.0
    if d <= 45.0 or d >= 315.0:
        return "front"
    if 135.0 <= d <= 225.0:
        return "back"
    return "side"
