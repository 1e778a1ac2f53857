"""CUHK-PEDES-style English descriptions generated from an appearance (varied templates, same facts)."""

from __future__ import annotations

import numpy as np

_UPPER_NOUN = {
    "tshirt": "t-shirt",
    "shirt": "shirt",
    "sweater": "sweater",
    "vneck": "v-neck top",
    "jacket": "jacket",
    "suit": "suit jacket",
    "dress": "dress",
}
_PATTERN = {"stripes": "striped", "plaid": "plaid", "splice": "two-tone"}
_LOWER_NOUN = {"trousers": "trousers", "jeans": "jeans", "shorts": "shorts", "skirt": "skirt"}
_SHOES = {
    "shoes": "shoes",
    "sneakers": "sneakers",
    "leather": "leather shoes",
    "boots": "boots",
    "sandals": "sandals",
}
_BAGS = {
    "backpack": "a {c} backpack",
    "shoulder": "a {c} shoulder bag",
    "handbag": "a {c} handbag",
    "plastic": "a white plastic bag",
}


def _pick(rng: np.random.Generator, options: list[str]) -> str:
    return options[int(rng.integers(len(options)))]


def _article(phrase: str) -> str:
    return ("an " if phrase[:1] in "aeiou" else "a ") + phrase


def describe(app: dict, rng: np.random.Generator) -> str:
    """One sentence-style description of ``app`` (several sentences, like CUHK-PEDES captions)."""
    female, age = app["female"], app["age"]
    if age < 18:
        who = "girl" if female else "boy"
    elif age >= 60:
        who = "old woman" if female else "old man"
    else:
        who = _pick(rng, ["woman", "lady"] if female else ["man", "guy"])
    he, his = ("she", "her") if female else ("he", "his")
    hair = f"{'long' if app['hair']['long'] else 'short'} {app['hair']['colour']['name']} hair"
    up, low, coat = app["upper"], app["lower"], app["coat"]
    pattern = _PATTERN.get(up["pattern"], "")
    sleeve = "short-sleeved " if up["sleeve"] == "short" and up["type"] not in ("tshirt", "dress") else ""
    upper = f"{pattern + ' ' if pattern else ''}{up['colour']['name']} {sleeve}{_UPPER_NOUN[up['type']]}"
    if up["logo"]:
        upper += f" with a {up['logo_colour']['name']} logo"
    if up["type"] == "dress":
        lower = ""
    else:
        lpat = {"stripe": " with a stripe down the side", "pattern": " with a dotted pattern"}.get(
            low["pattern"], ""
        )
        lower = f"{low['colour']['name']} {_LOWER_NOUN[low['type']]}{lpat}"
    shoes = f"{app['shoes']['colour']['name']} {_SHOES[app['shoes']['type']]}"
    wear = [_article(upper)]
    if coat is not None:
        wear.insert(0, f"a long {coat['colour']['name']} coat over")
    first = _pick(
        rng,
        [
            f"A {who} with {hair} is wearing ",
            f"The {who} has {hair} and wears ",
            f"This {who} with {hair} is dressed in ",
        ],
    )
    sentence = first + " ".join(wear)
    sentence += f", {lower} and {shoes}." if lower else f" and {shoes}."
    extras: list[str] = []
    if app["hat"] is not None:
        noun = _pick(rng, ["hat", "cap"]) if app["hat"]["type"] == "cap" else "hat"
        extras.append(f"{he} wears a {app['hat']['colour']['name']} {noun}")
    if app["glasses"] != "none":
        extras.append(f"{he} has {'sunglasses' if app['glasses'] == 'sunglasses' else 'glasses'} on")
    if app["muffler"] is not None:
        extras.append(f"a {app['muffler']['colour']['name']} scarf is around {his} neck")
    carried = [_BAGS[b["type"]].format(c=b["colour"]["name"]) for b in app["bags"]]
    if app["hold"] is not None:
        carried.append(f"a {app['hold']['colour']['name']} box in front of {'her' if female else 'him'}")
    if carried:
        verb = _pick(rng, ["is carrying", "carries", "has"])
        extras.append(f"{he} {verb} {' and '.join(carried)}")
    for extra in extras:
        sentence += " " + extra[0].upper() + extra[1:] + "."
    return sentence
