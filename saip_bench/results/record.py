"""One evaluation's record: what was evaluated, how, with which result, by which code, and when."""

from __future__ import annotations

import datetime as _dt
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from saip_bench.errors import SaipError


@dataclass
class EvalRecord:
    """One finished evaluation of one backbone on one dataset under one protocol (and input scale).

    Attributes:
        backbone_digest: Digest of the backbone's weights (``Backbone.digest``); identifies the row.
        backbone_name: Human name shown in reports (e.g. ``"saip_vit_tiny"`` or ``"random:saip_vit_tiny"``).
        pretrain_method: How the backbone was pretrained (``"saip"``, ``"mae"``, ``"dino"``, ``"random"``...).
        task: Task adapter name (``"reid"``, ``"attribute"``...), as in :mod:`saip_bench.datasets`.
        dataset: Dataset name (``"market1501"``...).
        protocol: ``"finetune"``, ``"linear"`` or ``"frozen"``.
        budget: ``"full"``, ``"short"`` or ``"smoke"``.
        metrics: Every metric the evaluation computed, by name.
        primary_metric: Name of the metric reports show (e.g. ``"mAP"``).
        primary_value: Its value (the unit, percent or fraction, is the task's choice; reports show it as is).
        config_digest: :func:`saip_bench.io.digest_obj` of the resolved evaluation config.
        seed: Random seed of the run.
        package_version: ``saip_bench.__version__`` of the code that ran.
        git_revision: :func:`saip_bench.io.git_revision`, or None outside a checkout.
        duration_s: Wall time of the evaluation in seconds; for a resumed run, of all its attempts together.
        started_at: ISO-8601 start time (see :func:`utc_now_iso`).
        ended_at: ISO-8601 end time.
        scale: Multiple of the recipe's input size (1.0 = the recipe's own size).
        resumed: Whether the run continued an interrupted attempt's checkpoint (``--resume``).
        resumed_from_step: The optimizer steps that attempt had done (0 when not resumed).
        id: Row id in the store; None until stored.
    """

    backbone_digest: str
    backbone_name: str
    pretrain_method: str
    task: str
    dataset: str
    protocol: str
    budget: str
    metrics: dict[str, float]
    primary_metric: str
    primary_value: float
    config_digest: str
    seed: int
    package_version: str
    git_revision: str | None
    duration_s: float
    started_at: str
    ended_at: str
    scale: float = 1.0
    resumed: bool = False
    resumed_from_step: int = 0
    id: int | None = field(default=None, compare=False)

    def validated(self) -> EvalRecord:
        """A copy with numbers coerced to their types; raise :class:`SaipError` on a nonsensical record."""
        for name in ("backbone_digest", "backbone_name", "task", "dataset", "protocol", "primary_metric"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise SaipError(f"evaluation record: {name} must be a non-empty string, got {value!r}")
        try:
            metrics = {str(k): float(v) for k, v in self.metrics.items()}
            scale = float(self.scale)
            primary = float(self.primary_value)
        except (TypeError, ValueError, AttributeError) as err:
            raise SaipError(f"evaluation record for {self.dataset}: non-numeric metric ({err})") from None
        if not (scale > 0 and math.isfinite(scale)):
            raise SaipError(f"evaluation record for {self.dataset}: scale must be positive, got {scale}")
        if int(self.resumed_from_step) < 0:
            raise SaipError(
                f"evaluation record for {self.dataset}: resumed_from_step must be >= 0, "
                f"got {self.resumed_from_step}"
            )
        return EvalRecord(
            **{
                **asdict(self),
                "metrics": metrics,
                "primary_value": primary,
                "scale": scale,
                "seed": int(self.seed),
                "duration_s": float(self.duration_s),
                "resumed": bool(self.resumed),
                "resumed_from_step": int(self.resumed_from_step),
            }
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EvalRecord:
        """Inverse of :meth:`to_dict`; unknown keys are ignored so older exports still load."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def utc_now_iso() -> str:
    """The current UTC time as ISO-8601 with seconds, e.g. ``2026-11-26T17:40:00+00:00``."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
