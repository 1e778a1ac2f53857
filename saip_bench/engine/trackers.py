"""Experiment trackers: a run's config and its step log's numbers in MLflow or Weights & Biases, when asked.

Off by default (``train.tracker: none``). Each one is an optional extra, imported only when it is on:

- ``mlflow`` (``pip install "saip-bench[mlflow]"``: mlflow-skinny) writes a local file store, no server:
  ``train.tracker_dir`` when set, else ``MLFLOW_TRACKING_URI`` (any URI mlflow takes: a server, or
  ``sqlite:///mlflow.db`` with the full ``mlflow`` package), else ``./mlruns``. The full package's
  ``mlflow ui --backend-store-uri ./mlruns`` shows it (with ``MLFLOW_ALLOW_FILE_STORE=true`` from mlflow 3).
- ``wandb`` (``pip install "saip-bench[wandb]"``) writes an offline run, no login and no network:
  ``DIR/wandb/offline-run-*`` with ``DIR`` = ``train.tracker_dir``, else ``WANDB_DIR``, else the working
  folder; ``wandb sync DIR/wandb/offline-run-*`` uploads it later. ``WANDB_MODE=online`` logs live instead.

``train.tracker_project`` names the MLflow experiment / the W&B project (default ``saip-bench``); the
tracker's run is named after the run directory.

Who feeds it: :func:`tracking` opens one tracker run for a run directory while a block runs (pretraining
around its loop; evaluation around each evaluation, :func:`saip_bench.evaluate.tracking.run_tracked`; and
:func:`~saip_bench.engine.fit` itself when nothing is open for its run directory) and logs the parameters
(the resolved config, flattened: ``train.lr``); the :class:`~saip_bench.engine.TrainLogger` of that run
directory sends it every logged step (``loss/<term>``, ``train/lr``, ``train/images_per_s``, the TensorBoard
tags) and every evaluation (``eval/<metric>``), and an evaluation adds its final metrics (``final/<metric>``).
Only rank 0 logs. A resumed run (``--resume``) continues the tracker run its run directory's
``tracker.json`` names.

A tracker that fails while logging (a full disk, a server gone) warns once and stops logging; the training
goes on.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import time
import urllib.parse
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from saip_bench.engine.distributed import is_main
from saip_bench.errors import ConfigError, Interrupted
from saip_bench.io import atomic_write_json

log = logging.getLogger(__name__)

#: The values of ``train.tracker``.
TRACKERS: tuple[str, ...] = ("none", "mlflow", "wandb")
#: The MLflow experiment / W&B project when ``train.tracker_project`` is not set.
DEFAULT_PROJECT = "saip-bench"
#: Where a run directory keeps the id of its tracker run, so a resumed run continues it.
TRACKER_FILE = "tracker.json"
#: The module each tracker imports and the extra that installs it.
_PACKAGES = {"mlflow": "mlflow", "wandb": "wandb"}
#: mlflow's limits: parameters per request and characters of a parameter's value.
_MLFLOW_BATCH = 100
_MLFLOW_VALUE_CHARS = 6000

# The open tracker of each run directory (resolved path), for the TrainLogger of that directory.
_active: dict[Path, Tracker] = {}


class Tracker:
    """One run of an experiment tracker: parameters once, numbers per step, then :meth:`close`.

    Subclasses implement ``_log_params``, ``_log_metrics`` and ``_close``; the public methods make a
    failure a warning that turns the tracker off, so a tracker never stops a training run.

    Attributes:
        kind: ``"mlflow"`` or ``"wandb"``.
        run_id: the tracker's id of the run.
        location: where it writes (a store URI, a folder), for the log.
    """

    kind = ""

    def __init__(self) -> None:
        self.run_id = ""
        self.location = ""
        self._broken = False
        self._closed = False

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Record the run's parameters (flat ``name -> scalar``; see :func:`flatten`)."""
        self._guard(self._log_params, dict(params))

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Record ``name -> value`` at optimizer step ``step`` (None: the last step logged, 0 if none)."""
        values = {str(k): float(v) for k, v in metrics.items()}
        if values:
            self._guard(self._log_metrics, values, step)

    def close(self, *, status: str = "FINISHED") -> None:
        """End the run as ``FINISHED``, ``FAILED`` or ``KILLED`` (an interrupted run); safe to call twice."""
        if not self._closed:
            self._closed = True
            self._guard(self._close, status)

    def _guard(self, fn: Any, *args: Any) -> None:
        if self._broken:
            return
        try:
            fn(*args)
        except Exception as err:  # any error of the tracker's package: the training matters more
            self._broken = True
            log.warning("%s tracker at %s failed, no more logging to it: %s", self.kind, self.location, err)

    def _log_params(self, params: dict[str, Any]) -> None:
        raise NotImplementedError

    def _log_metrics(self, metrics: dict[str, float], step: int | None) -> None:
        raise NotImplementedError

    def _close(self, status: str) -> None:
        raise NotImplementedError


class MLflowTracker(Tracker):
    """An MLflow run, through ``MlflowClient`` (no global active run, no autologging).

    Args:
        run_name: the run's name in the experiment.
        experiment: the experiment, created when missing.
        directory: a folder for a local file store; default ``MLFLOW_TRACKING_URI``, else ``./mlruns``.
        tags: run tags (``saip.run_dir``).
        run_id: an existing run to continue (a resumed training); its parameters are kept.
    """

    kind = "mlflow"

    def __init__(
        self,
        run_name: str,
        *,
        experiment: str = DEFAULT_PROJECT,
        directory: str | Path | None = None,
        tags: Mapping[str, str] | None = None,
        run_id: str | None = None,
    ) -> None:
        super().__init__()
        from mlflow.tracking import MlflowClient

        if directory is not None:
            uri = Path(directory).resolve().as_uri()
        else:
            uri = os.environ.get("MLFLOW_TRACKING_URI") or (Path.cwd() / "mlruns").resolve().as_uri()
        if urllib.parse.urlparse(uri).scheme in ("", "file"):
            # mlflow 3 keeps the file store in maintenance and refuses it unless this opt-out is set; it is
            # the store that needs no server and no database (mlflow-skinny has no SQLite store).
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        self.location = uri
        self._client = MlflowClient(tracking_uri=uri)
        self._step = 0
        self._known: dict[str, str] = {}
        if run_id is not None:
            run = self._client.get_run(run_id)
            self._client.update_run(run_id, status="RUNNING")
            self._known = dict(run.data.params)
            self.run_id = run_id
            log.info("MLflow run %s (%s) continued in %s", run_id, run_name, uri)
            return
        found = self._client.get_experiment_by_name(experiment)
        if found is not None:
            experiment_id = found.experiment_id
        else:
            try:
                experiment_id = self._client.create_experiment(experiment)
            except Exception:  # another process created it first
                found = self._client.get_experiment_by_name(experiment)
                if found is None:
                    raise
                experiment_id = found.experiment_id
        run = self._client.create_run(experiment_id, run_name=run_name, tags=dict(tags or {}))
        self.run_id = run.info.run_id
        log.info("MLflow run %s (%s) in %s", self.run_id, run_name, uri)

    def _log_params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        # mlflow refuses to change a logged parameter: a resumed run keeps the first attempt's values.
        rows = [
            Param(key, _text(value)[:_MLFLOW_VALUE_CHARS])
            for key, value in params.items()
            if key not in self._known
        ]
        for start in range(0, len(rows), _MLFLOW_BATCH):
            self._client.log_batch(self.run_id, params=rows[start : start + _MLFLOW_BATCH])
        self._known.update({row.key: row.value for row in rows})

    def _log_metrics(self, metrics: dict[str, float], step: int | None) -> None:
        from mlflow.entities import Metric

        if step is not None:
            self._step = max(self._step, int(step))
        at, now = self._step if step is None else int(step), int(time.time() * 1000)
        rows = [Metric(key, value, now, at) for key, value in metrics.items()]
        for start in range(0, len(rows), 1000):  # mlflow's limit of metrics per request
            self._client.log_batch(self.run_id, metrics=rows[start : start + 1000])

    def _close(self, status: str) -> None:
        self._client.set_terminated(self.run_id, status=status)


class WandbTracker(Tracker):
    """A Weights & Biases run, offline unless ``WANDB_MODE`` says otherwise.

    Args:
        run_name: the run's display name.
        project: the W&B project.
        directory: the folder ``wandb/`` goes in; default ``WANDB_DIR``, else the working folder.
        job_type: ``pretrain`` or ``evaluate``.
        run_id: the id of an earlier attempt's run (a resumed training: ``wandb sync`` joins them).
    """

    kind = "wandb"

    def __init__(
        self,
        run_name: str,
        *,
        project: str = DEFAULT_PROJECT,
        directory: str | Path | None = None,
        job_type: str | None = None,
        run_id: str | None = None,
    ) -> None:
        super().__init__()
        import wandb

        folder = Path(directory or os.environ.get("WANDB_DIR") or Path.cwd()).resolve()
        folder.mkdir(parents=True, exist_ok=True)
        mode = os.environ.get("WANDB_MODE") or "offline"
        # console off: wandb would otherwise wrap stdout and stderr, which the CLI's progress display owns.
        settings = wandb.Settings(silent=True, console="off")
        self._run = wandb.init(
            project=project, name=run_name, dir=str(folder), mode=mode, job_type=job_type,  # type: ignore[arg-type]
            id=run_id, resume="allow" if run_id else None, settings=settings,
        )  # fmt: skip
        self.run_id = str(self._run.id)
        self.location = str(Path(self._run.dir).parent) if self._run.dir else str(folder)
        self._step = 0
        sync = f"; upload it with `wandb sync {self.location}`" if mode == "offline" else ""
        log.info("W&B %s run %s (%s) in %s%s", mode, self.run_id, run_name, self.location, sync)

    def _log_params(self, params: dict[str, Any]) -> None:
        self._run.config.update(params, allow_val_change=True)

    def _log_metrics(self, metrics: dict[str, float], step: int | None) -> None:
        if step is None:  # W&B's steps only go up: a final number is the run's summary value
            self._run.summary.update(metrics)
            return
        self._step = max(self._step, int(step))
        self._run.log(metrics, step=self._step)

    def _close(self, status: str) -> None:
        self._run.finish(exit_code=0 if status == "FINISHED" else 1)


def check_tracker(kind: Any, *, source: str = "train.tracker") -> str:
    """``kind`` if it names a tracker whose package is installed (``"none"`` always is).

    Raises:
        ConfigError: an unknown name, or the package is missing (the message says which extra installs it).
    """
    if kind not in TRACKERS:
        raise ConfigError(f"{source}: must be one of {', '.join(TRACKERS)}, not {kind!r}")
    module = _PACKAGES.get(kind)
    if module is not None and not _installed(module):
        raise ConfigError(
            f'{source}={kind}: the {module} package is not installed; pip install "saip-bench[{kind}]"'
        )
    return kind


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config as ``{"train.lr": 0.001, "model.img_size": "[256, 128]", ...}`` (lists as JSON)."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{name}."))
        elif isinstance(value, (str, int, float, bool)) or value is None:
            flat[name] = value
        else:
            flat[name] = _text(value)
    return flat


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value)
    except TypeError:
        return str(value)


def open_tracker(
    kind: str,
    run_name: str,
    *,
    project: str | None = None,
    directory: str | Path | None = None,
    job_type: str | None = None,
    tags: Mapping[str, str] | None = None,
    run_id: str | None = None,
) -> Tracker | None:
    """A new (or, with ``run_id``, a continued) tracker run of ``kind``; None for ``"none"``.

    Raises:
        ConfigError: an unknown kind, a missing package, or the tracker refused to start (one line).
    """
    if check_tracker(kind) == "none":
        return None
    project = project or DEFAULT_PROJECT
    try:
        if kind == "mlflow":
            return MLflowTracker(run_name, experiment=project, directory=directory, tags=tags, run_id=run_id)
        return WandbTracker(run_name, project=project, directory=directory, job_type=job_type, run_id=run_id)
    except Exception as err:  # the package's own errors: a bad store URI, an unwritable folder
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        where = directory or "the default location"
        raise ConfigError(f"train.tracker={kind}: cannot start a run in {where} ({first})") from None


def active_tracker(run_dir: str | Path) -> Tracker | None:
    """The tracker :func:`tracking` has open for ``run_dir``, if any."""
    return _active.get(Path(run_dir).resolve())


@contextlib.contextmanager
def tracking(
    kind: str | None,
    run_dir: str | Path,
    *,
    params: Mapping[str, Any],
    project: str | None = None,
    directory: str | Path | None = None,
    job_type: str | None = None,
    resume: bool = False,
    enabled: bool | None = None,
) -> Iterator[Tracker | None]:
    """A tracker run for ``run_dir`` while the block runs; the run directory's TrainLogger feeds it.

    Logs ``params`` (flattened) first; the run ends ``FINISHED``, ``FAILED`` when the block raises, or
    ``KILLED`` when it is :class:`~saip_bench.errors.Interrupted`. Inside a block that already tracks
    ``run_dir`` (an evaluation around :func:`~saip_bench.engine.fit`), it yields that tracker, opens nothing.

    Args:
        kind: ``"none"`` (or None), ``"mlflow"`` or ``"wandb"``.
        run_dir: the run directory; the tracker run is named after it and its id kept in ``tracker.json``.
        params: the resolved config (nested or flat).
        project: the MLflow experiment / W&B project; default :data:`DEFAULT_PROJECT`.
        directory: where the tracker writes (see the module); default its environment variable or the
            working folder.
        job_type: what the run is (``pretrain``, ``evaluate``), a tag.
        resume: continue the tracker run ``tracker.json`` names, when it is of the same kind and place.
        enabled: whether this process logs; default :func:`~saip_bench.engine.distributed.is_main`.

    Raises:
        ConfigError: an unknown tracker, its package missing, or the tracker refused to start.
    """
    run_dir = Path(run_dir)
    key = run_dir.resolve()
    if kind in (None, "none") or not (is_main() if enabled is None else enabled) or key in _active:
        check_tracker(kind or "none")
        yield _active.get(key)
        return
    previous = _previous_run(run_dir, kind, directory) if resume else None
    tags = {"saip.run_dir": str(key), **({"saip.job": job_type} if job_type else {})}
    options: dict[str, Any] = dict(project=project, directory=directory, job_type=job_type, tags=tags)
    tracker = None
    if previous is not None:
        try:
            tracker = open_tracker(kind, run_dir.name, run_id=previous, **options)
        except ConfigError as err:  # the earlier run is not in this store (MLFLOW_TRACKING_URI changed)
            log.warning("%s: not continuing %s run %s (%s); starting a new one", run_dir, kind, previous, err)
    if tracker is None:
        tracker = open_tracker(kind, run_dir.name, **options)
    assert tracker is not None
    status = "FINISHED"
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        note = {"tracker": kind, "run_id": tracker.run_id, "location": tracker.location}
        atomic_write_json(run_dir / TRACKER_FILE, {**note, "directory": _where(directory)})
        tracker.log_params({**flatten(params), "saip.run_dir": str(key)})
        _active[key] = tracker
        yield tracker
    except Interrupted:
        status = "KILLED"
        raise
    except BaseException:
        status = "FAILED"
        raise
    finally:
        _active.pop(key, None)
        tracker.close(status=status)


def _where(directory: str | Path | None) -> str | None:
    return str(Path(directory).resolve()) if directory is not None else None


def _previous_run(run_dir: Path, kind: str, directory: str | Path | None) -> str | None:
    """The run id ``run_dir/tracker.json`` names for a tracker of ``kind`` writing to ``directory``."""
    try:
        note = json.loads((run_dir / TRACKER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(note, dict):
        return None
    if note.get("tracker") != kind or note.get("directory") != _where(directory):
        return None
    return str(note.get("run_id") or "") or None
