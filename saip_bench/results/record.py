"""One evaluation's record: what was evaluated, how, with which result, by which code, and when."""

from __future__ import annotations

import datetime as _dt
import math
import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from saip_bench.errors import SaipError

#: Tolerance for matching float scales: 0.75 written by one process must match 0.75 parsed by another.
SCALE_EPS = 1e-9
# A uid names a record file, so it must be a plain file name: uuid4 hex, or a hand-made id of the same kind.
_UID = re.compile(r"[0-9A-Za-z_-]{1,64}")


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
        train_scale: The input-size multiple the evaluated model was trained at: 1.0 for the records of a
            scale probe (``saip evaluate --scales``: one model trained at the recipe's size, evaluated at
            every scale); ``scale`` itself when trained at the evaluated size (``--train-per-scale``) or the
            protocol trains nothing (``frozen``). Given as None (records written before the field), it is set
            to ``scale`` when the record is made.
        train_run: The run folder (relative to the workspace) the evaluated model was trained in; the records
            of one scale probe share it. ``""`` when not known (records written before the field).
        uid: Globally unique id (uuid4 hex) given when the record file is written
            (:func:`saip_bench.results.files.write_record_file`); ``""`` for a record stored without one.
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
    train_scale: float | None = None
    train_run: str = ""
    uid: str = ""
    id: int | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.train_scale is None:  # written before the field: trained at the size it was evaluated at
            self.train_scale = self.scale

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
        try:
            train_scale = float(self.train_scale)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            train_scale = float("nan")
        if not (train_scale > 0 and math.isfinite(train_scale)):
            raise SaipError(
                f"evaluation record for {self.dataset}: train_scale must be positive, "
                f"got {self.train_scale!r}"
            )
        if not isinstance(self.train_run, str):
            raise SaipError(
                f"evaluation record for {self.dataset}: train_run must be a string, got {self.train_run!r}"
            )
        if not isinstance(self.uid, str) or (self.uid and not _UID.fullmatch(self.uid)):
            raise SaipError(
                f"evaluation record for {self.dataset}: uid must be letters, digits, '-' or '_' "
                f"(at most 64), got {self.uid!r}"
            )
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
                "train_scale": train_scale,
                "seed": int(self.seed),
                "duration_s": float(self.duration_s),
                "resumed": bool(self.resumed),
                "resumed_from_step": int(self.resumed_from_step),
            }
        )

    def matches(
        self,
        *,
        task: str | None = None,
        dataset: str | None = None,
        backbone: str | None = None,
        protocol: str | None = None,
        scale: float | None = None,
    ) -> bool:
        """Whether this record passes every given filter, as :meth:`ResultsStore.query` applies them.

        Args:
            task: Task adapter name.
            dataset: Dataset name.
            backbone: A backbone name, or its digest or a prefix of it (at least 6 characters).
            protocol: Evaluation protocol.
            scale: Input-scale multiple.
        """
        for name, value in (("task", task), ("dataset", dataset), ("protocol", protocol)):
            if value is not None and getattr(self, name) != value:
                return False
        by_digest = backbone is not None and len(backbone) >= 6 and self.backbone_digest.startswith(backbone)
        if backbone is not None and self.backbone_name != backbone and not by_digest:
            return False
        return scale is None or abs(float(self.scale) - float(scale)) < SCALE_EPS

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
