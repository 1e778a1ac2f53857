"""Training progress that a log file can hold: plain step lines, a ``train.log`` per run, TensorBoard scalars.

A run on a cluster writes to a Slurm ``.out`` file, not a terminal, so a progress bar shows nothing there.
:class:`TrainLogger` turns every ``log_every``-th step into one plain line::

    step 10/30 loss 1.2345 (csm 0.4012, csr 0.8333) lr 1.20e-04 12.3 img/s ETA 0:01:10

written to ``RUN/train.log`` (whatever the logging levels, together with the run's other ``saip_bench`` log
records that the levels let through) and emitted at INFO on the ``saip_bench.progress`` logger (the CLI
prints it when stdout is not a terminal, and shows its bar instead when it is); the same numbers go to
TensorBoard under ``RUN/tb``, and to the experiment tracker open for the run directory, if any
(:mod:`saip_bench.engine.trackers`: MLflow, W&B). Only rank 0 logs. Pretraining and the fine-tuning loop
both use it, so every run directory gets the same log.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from saip_bench.engine.distributed import is_main
from saip_bench.engine.trackers import Tracker, active_tracker

#: The logger the step lines go to; the CLI keeps it off a terminal that shows a progress bar.
PROGRESS_LOGGER = "saip_bench.progress"
LOG_NAME = "train.log"

_progress = logging.getLogger(PROGRESS_LOGGER)
_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"

log = logging.getLogger(__name__)


def format_eta(seconds: float) -> str:
    """``H:MM:SS`` of a non-negative number of seconds (whole seconds)."""
    return str(datetime.timedelta(seconds=int(max(0.0, seconds))))


def format_step_line(
    step: int,
    total_steps: int,
    losses: dict[str, float],
    lr: float,
    images_per_s: float | None = None,
    eta_s: float | None = None,
) -> str:
    """One progress line: step, total loss, the other terms in brackets, lr, throughput, ETA."""
    parts = [f"step {step}/{total_steps}"]
    if "loss" in losses:
        parts.append(f"loss {float(losses['loss']):.4f}")
    terms = [f"{k} {float(v):.4f}" for k, v in losses.items() if k != "loss"]
    if terms:
        parts.append(f"({', '.join(terms)})")
    parts.append(f"lr {lr:.2e}")
    if images_per_s is not None:
        parts.append(f"{images_per_s:.1f} img/s")
    if eta_s is not None:
        parts.append(f"ETA {format_eta(eta_s)}")
    return " ".join(parts)


def _attach(run_dir: Path, stream: Any) -> logging.Handler:
    """A handler of the ``saip_bench`` logger writing ``stream`` (the run's ``train.log``): the records the
    logging levels let through, at INFO and above; the step lines are written directly, whatever the levels,
    so the handler skips their logger."""
    handler = logging.StreamHandler(stream)
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", datefmt=_TIME_FORMAT))
    handler.addFilter(lambda record: not record.name.startswith(PROGRESS_LOGGER))
    handler.saip_run_dir = run_dir.resolve()  # type: ignore[attr-defined]
    logging.getLogger("saip_bench").addHandler(handler)
    return handler


def _has_run_log(run_dir: Path) -> bool:
    target = run_dir.resolve()
    return any(getattr(h, "saip_run_dir", None) == target for h in logging.getLogger("saip_bench").handlers)


@contextlib.contextmanager
def run_log(run_dir: str | Path, *, enabled: bool | None = None) -> Iterator[None]:
    """Send the ``saip_bench`` log records of one run to ``RUN/train.log`` while the block runs.

    Dispatch wraps every evaluation in it, so a run that trains nothing (a frozen or a linear probe) has its
    text log too; a :class:`TrainLogger` inside the block writes its step lines to the same file without
    attaching a second handler.
    """
    run_dir = Path(run_dir)
    if not (is_main() if enabled is None else enabled) or _has_run_log(run_dir):
        yield
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / LOG_NAME, "a", encoding="utf-8") as stream:
        handler = _attach(run_dir, stream)
        try:
            yield
        finally:
            logging.getLogger("saip_bench").removeHandler(handler)
            handler.close()


class TrainLogger:
    """Step lines, ``train.log``, TensorBoard scalars and the experiment tracker's numbers for one run.

    Example::

        logger = TrainLogger(run_dir, total_steps=300, log_every=10)
        for step in range(start, 300):
            ...
            logger.step(step + 1, {"loss": 0.9, "ce": 0.7, "tri": 0.2}, lr=1e-3, images_per_s=250.0)
        logger.close()

    Args:
        run_dir: the run directory; ``train.log`` (appended to, so a resumed run continues it) and ``tb/``.
        total_steps: the run's optimizer steps (for ``step N/total`` and the ETA).
        log_every: a line (and TensorBoard scalars) every N steps, and always at the last step.
        tensorboard: write TensorBoard scalars (``loss/<term>``, ``train/lr``, ``train/images_per_s``).
        start_step: the step the run starts (or resumes) from: the ETA is timed from there.
        enabled: whether this process logs; default :func:`~saip_bench.engine.distributed.is_main`.
        tracker: the experiment tracker the numbers also go to; default the one
            :func:`~saip_bench.engine.trackers.tracking` has open for ``run_dir`` (the caller closes it).
    """

    def __init__(
        self,
        run_dir: str | Path,
        total_steps: int,
        log_every: int = 10,
        *,
        tensorboard: bool = True,
        start_step: int = 0,
        enabled: bool | None = None,
        tracker: Tracker | None = None,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.total_steps = int(total_steps)
        self.log_every = max(1, int(log_every))
        self.tensorboard = tensorboard
        self.enabled = is_main() if enabled is None else enabled
        self._start_step = int(start_step)
        self._start_time = time.perf_counter()
        self._writer: Any = None
        self._handler: logging.Handler | None = None
        self._file: Any = None
        self._tracker = tracker
        if self.enabled:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self._file = open(self.run_dir / LOG_NAME, "a", encoding="utf-8")  # noqa: SIM115 (closed in close)
            # The run's other records (set-up, resume, warnings), unless a run_log already sends them here.
            if not _has_run_log(self.run_dir):
                self._handler = _attach(self.run_dir, self._file)

    def start(self, step: int) -> None:
        """Restart the ETA clock at ``step`` steps done (where a resumed run continues from)."""
        self._start_step = int(step)
        self._start_time = time.perf_counter()

    @property
    def log_path(self) -> Path:
        """The run's text log."""
        return self.run_dir / LOG_NAME

    def due(self, step: int) -> bool:
        """Whether ``step`` (steps done) gets a line: every ``log_every`` steps and the last one."""
        return step % self.log_every == 0 or step == self.total_steps

    def eta(self, step: int) -> float | None:
        """Seconds left at ``step`` steps done, from the mean step time since ``start_step``."""
        done = step - self._start_step
        if done <= 0:
            return None
        return (time.perf_counter() - self._start_time) / done * max(0, self.total_steps - step)

    def step(
        self,
        step: int,
        losses: dict[str, float],
        lr: float,
        images_per_s: float | None = None,
        *,
        scalars: dict[str, float] | None = None,
    ) -> None:
        """Report the state after ``step`` optimizer steps; logs only when :meth:`due`.

        Args:
            step: steps done (1-based: the first step reports 1).
            losses: ``{"loss": total, term: value, ...}`` as floats (or 0-d tensors).
            lr: the learning rate of the step (the peak group's).
            images_per_s: training throughput (all ranks), when known.
            scalars: extra TensorBoard scalars under their full tag (e.g. ``{"train/momentum": 0.996}``).
        """
        if not self.enabled or not self.due(step):
            return
        values = {k: float(v) for k, v in losses.items()}
        self._line(format_step_line(step, self.total_steps, values, lr, images_per_s, self.eta(step)))
        writer = self._tb()
        if writer is not None:
            for key, value in values.items():
                writer.add_scalar(f"loss/{key}", value, step)
            writer.add_scalar("train/lr", lr, step)
            if images_per_s is not None:
                writer.add_scalar("train/images_per_s", images_per_s, step)
            for key, value in (scalars or {}).items():
                writer.add_scalar(key, float(value), step)
        tracker = self.tracker
        if tracker is not None:
            numbers = {f"loss/{key}": value for key, value in values.items()}
            numbers["train/lr"] = lr
            if images_per_s is not None:
                numbers["train/images_per_s"] = images_per_s
            tracker.log_metrics({**numbers, **(scalars or {})}, step)

    def metrics(self, step: int, metrics: dict[str, float], *, prefix: str = "eval", label: str = "") -> None:
        """Log evaluation metrics: a line (``eval epoch 3: mAP 41.20, rank1 60.10``), TensorBoard, tracker.

        Args:
            step: the global step the metrics belong to (TensorBoard's x axis).
            metrics: metric name -> value.
            prefix: TensorBoard tag prefix and the line's first word.
            label: what the line names after the prefix (e.g. ``"epoch 3"``); default ``step N``.
        """
        if not self.enabled:
            return
        text = ", ".join(f"{k} {float(v):.2f}" for k, v in metrics.items())
        self._line(f"{prefix} {label or f'step {step}'}: {text}")
        writer = self._tb()
        if writer is not None:
            for key, value in metrics.items():
                writer.add_scalar(f"{prefix}/{key}", float(value), step)
        tracker = self.tracker
        if tracker is not None:
            tracker.log_metrics({f"{prefix}/{key}": value for key, value in metrics.items()}, step)

    @property
    def tracker(self) -> Tracker | None:
        """The experiment tracker this log feeds (rank 0), if one is on."""
        if not self.enabled:
            return None
        return self._tracker if self._tracker is not None else active_tracker(self.run_dir)

    def _line(self, line: str) -> None:
        """``line`` into ``train.log`` (timestamped) and onto the progress logger (the console's business)."""
        self._file.write(f"{time.strftime(_TIME_FORMAT)} {line}\n")
        self._file.flush()
        _progress.info(line)

    def _tb(self) -> Any:
        if self._writer is None and self.tensorboard and self.enabled:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(self.run_dir / "tb"))
        return self._writer

    def close(self) -> None:
        """Flush TensorBoard and stop writing ``train.log`` (safe to call twice)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._handler is not None:
            logging.getLogger("saip_bench").removeHandler(self._handler)
            self._handler.close()
            self._handler = None
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> TrainLogger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
