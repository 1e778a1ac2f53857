"""The method table: a name -> the loss terms it trains, the views they need and whether it has a teacher.

``saip`` = CSM (cross-view distillation) + CSM attention relation + CSR + CSS; ``mae`` = masked pixel
reconstruction at one scale; ``dino`` = multi-crop self-distillation. All three run through the same
meta-architecture, views and engine; an ablation keeps a subset of a method's terms (``objectives=csm,csr``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from saip_bench.errors import ConfigError
from saip_bench.registry import Registry

#: Terms that read the EMA teacher.
TEACHER_TERMS = frozenset({"csm", "csm_attn", "css", "dino"})
#: Terms that read the local views (CSS pastes and queries two of them).
LOCAL_TERMS = frozenset({"csm", "css", "dino"})


@dataclass(frozen=True)
class MethodDef:
    """One row of the method table."""

    name: str
    terms: tuple[str, ...]
    description: str
    rescale_locals: bool  # rescale two local views at training time (SAIP's cross-scale views)


METHODS: Registry[MethodDef] = Registry("pretraining method")
METHODS.add(
    "saip",
    MethodDef(
        "saip",
        ("csm", "csm_attn", "csr", "css"),
        "Scale-Aware Image Pretraining: cross-scale matching, reconstruction and search",
        True,
    ),
)
METHODS.add("mae", MethodDef("mae", ("mae",), "masked pixel reconstruction at one scale", False))
METHODS.add("dino", MethodDef("dino", ("dino",), "multi-crop self-distillation", False))


@dataclass(frozen=True)
class MethodSpec:
    """A method resolved against the config: the terms that run and their weights."""

    name: str
    terms: tuple[str, ...]  # active: in the method, selected, weight > 0
    weights: dict[str, float]
    rescale_locals: bool

    def has(self, term: str) -> bool:
        return term in self.terms

    @property
    def needs_teacher(self) -> bool:
        return bool(TEACHER_TERMS & set(self.terms))

    @property
    def needs_locals(self) -> bool:
        return bool(LOCAL_TERMS & set(self.terms))

    @property
    def needs_composite(self) -> bool:
        return "css" in self.terms


def resolve(method: str, objectives: str | Sequence[str] | None, weights: Mapping[str, float]) -> MethodSpec:
    """Resolve ``method`` with an optional subset of its terms and the config's loss weights.

    Raises:
        ConfigError: unknown method, a term the method does not have, a negative weight, or no term left.
    """
    try:
        mdef = METHODS.get(str(method))
    except KeyError as err:
        raise ConfigError(f"method: {err}") from None
    if objectives is None or objectives == "":
        chosen = list(mdef.terms)
    else:
        items = objectives.split(",") if isinstance(objectives, str) else list(objectives)
        chosen = [t.strip() for t in items if t.strip()]
        unknown = [t for t in chosen if t not in mdef.terms]
        if unknown:
            raise ConfigError(
                f"objectives: {', '.join(unknown)} not a term of method {mdef.name!r} "
                f"(its terms: {', '.join(mdef.terms)})"
            )
    active, used = [], {}
    for term in mdef.terms:
        weight = float(weights.get(term, 1.0))
        if weight < 0:
            raise ConfigError(f"loss.{term}: weight must be >= 0, got {weight}")
        if term in chosen and weight > 0:
            active.append(term)
            used[term] = weight
    if not active:
        raise ConfigError(f"method {mdef.name!r}: every term has weight 0 or is deselected; nothing to train")
    return MethodSpec(mdef.name, tuple(active), used, mdef.rescale_locals)
