"""Budgets: how much of a recipe's training a run spends (``full``, ``short``, ``smoke``).

A recipe may spell out each budget's overrides under ``budgets:``; where it does not, these defaults apply:
``full`` keeps the recipe, ``short`` trains a quarter of the epochs, ``smoke`` one epoch of at most
:data:`SMOKE_STEPS` steps (enough to show every code path runs, seconds on a CPU).
"""

from __future__ import annotations

import math
from typing import Any

from saip_bench.errors import ConfigError

BUDGETS: tuple[str, ...] = ("full", "short", "smoke")
SMOKE_STEPS = 4


def default_overrides(budget: str, train: dict[str, Any]) -> dict[str, Any]:
    """The ``train`` overrides a budget implies when the recipe does not name them.

    Args:
        budget: ``"full"``, ``"short"`` or ``"smoke"``.
        train: the recipe's ``train`` section (engine keywords) before the budget.

    Returns:
        Keys to set in the ``train`` section.
    """
    if budget not in BUDGETS:
        raise ConfigError(f"unknown budget {budget!r}; valid budgets: {', '.join(BUDGETS)}")
    epochs = int(train.get("epochs", 1))
    if budget == "full":
        return {}
    if budget == "short":
        short = max(1, math.ceil(epochs / 4))
        warmup = float(train.get("warmup_epochs", 0.0))
        return {"epochs": short, "warmup_epochs": min(warmup, short / 4)}
    return {"epochs": 1, "max_steps_per_epoch": SMOKE_STEPS, "warmup_epochs": 0.0, "eval_every": 1}
