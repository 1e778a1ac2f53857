"""Slurm jobs through submitit: sbatch settings, submission, job states, torch's environment, requeue.

Campaigns (``saip bench run`` with ``launcher: slurm``) and ``saip pretrain --launcher slurm`` submit through
:func:`make_executor` + :func:`submit` / :func:`submit_array`; a job that must survive preemption or its time
limit is a :class:`Requeueable`. submitit is optional (``pip install "saip-bench[slurm]"``): this module
imports without it, only calling it needs it.

Requeue, as measured on a real cluster (Slurm 22.05, submitit 1.5.4):

* time limit near / preemption signal: Slurm sends ``USR2`` ``signal_delay_s`` before the limit; submitit's
  handler calls the callable's ``checkpoint()``, writes what it returns over the submitted pickle, runs
  ``scontrol requeue`` and exits without a result, so the rerun runs ``checkpoint()``'s callable
  (``resuming=True``). :class:`Requeueable` first lets a training loop that stops gracefully on SIGTERM
  (:class:`~saip_bench.engine.signals.StopRequest`) finish its step and write ``last.pt``.
* ``scontrol requeue`` (or Slurm's own requeue on preemption): every task gets SIGTERM, then SIGKILL after
  ``KillWait``, and the rerun re-executes the submitted callable with ``SLURM_RESTART_COUNT`` one higher.
  submitit itself ignores SIGTERM, but a callable that catches it and raises
  (:class:`~saip_bench.errors.Interrupted`, as the training loop does) makes submitit write that error as the
  job's result: a waiting ``job.result()`` raises ``FailedJobError`` (the Interrupted) about a second after
  the requeue, while the rerun still runs and later overwrites the result file with its own.
  :class:`Requeueable` sees the requeue (``scontrol show job``: ``Restarts`` is already one more than this
  run's ``SLURM_RESTART_COUNT``) and exits without a result instead, so ``job.result()`` is the rerun's.
* ``scancel`` and the time limit itself (no requeue): the Interrupted stays the job's result.

With accounting off (``sacct`` refuses), submitit's ``job.result()`` cannot tell a job that died without a
result from a queued one and waits forever; :func:`wait_result` asks ``squeue`` too.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from saip_bench.errors import ConfigError, SaipError

log = logging.getLogger(__name__)

#: The states of a job Slurm still holds and that has not started (or restarts).
QUEUED_STATES = frozenset(
    {"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD", "CONFIGURING"}
)
#: The states of a job that holds its nodes.
RUNNING_STATES = frozenset(
    {"RUNNING", "COMPLETING", "SIGNALING", "STAGE_OUT", "SUSPENDED", "STOPPED", "RESIZING"}
)
#: A job that is neither finished nor failed yet.
ACTIVE_STATES = QUEUED_STATES | RUNNING_STATES
#: :func:`job_states` of a job Slurm no longer knows: finished (and its record purged, which happens
#: ``MinJobAge`` seconds after the end when accounting is off), or never submitted.
GONE = "UNKNOWN"

_INSTALL_HINT = 'pip install "saip-bench[slurm]"'


def require_submitit() -> Any:
    """The submitit module.

    Raises:
        ConfigError: submitit is not installed; the message says how to install it.
    """
    try:
        import submitit
    except ImportError:
        raise ConfigError(f"the Slurm launcher needs submitit: {_INSTALL_HINT}") from None
    return submitit


@dataclass
class SlurmSettings:
    """The sbatch settings of a job (or of every task of a job array).

    Attributes:
        partition, account, qos: sbatch's ``--partition`` / ``--account`` / ``--qos`` (None: the cluster's
            default).
        nodes, gpus_per_node, tasks_per_node, cpus_per_task: the allocation; one task per GPU for training.
        mem_gb: memory per node (None: the partition's default).
        time_min: the time limit.
        array_parallelism: at most this many tasks of a job array run at once.
        requeue: ``--requeue`` (else ``--no-requeue``): the job may go back to the queue on preemption.
        signal_delay_s: how long before the time limit Slurm sends the job ``USR2`` (it checkpoints and
            requeues itself).
        extra: more sbatch flags, ``{"constraint": "a100", "exclusive": True}`` (True: a flag without a
            value), as submitit's ``slurm_additional_parameters``.
        setup: shell lines the job runs before the Python process (``module load cuda``).
    """

    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    nodes: int = 1
    gpus_per_node: int = 0
    tasks_per_node: int = 1
    cpus_per_task: int = 1
    mem_gb: float | None = None
    time_min: int = 60
    array_parallelism: int = 16
    requeue: bool = True
    signal_delay_s: int = 120
    extra: dict[str, object] = field(default_factory=dict)
    setup: list[str] = field(default_factory=list)

    @classmethod
    def from_mapping(cls, data: Mapping, *, where: str) -> SlurmSettings:
        """Settings from a config mapping; every key checked.

        Raises:
            ConfigError: ``data`` is not a mapping, a key is unknown or a value has the wrong type or
                range; one line naming ``where`` and the key.
        """
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where}: must be a mapping of sbatch settings, got {data!r}")
        names = [f.name for f in dataclasses.fields(cls)]
        values: dict[str, Any] = {}
        for key, value in data.items():
            if key not in names:
                raise ConfigError(f"{where}: unknown key {key!r}; valid keys: {', '.join(names)}")
            check, what = _CHECKS[key]
            if not check(value):
                raise ConfigError(f"{where}: {key} must be {what}, got {value!r}")
            values[key] = value
        if "mem_gb" in values and values["mem_gb"] is not None:
            values["mem_gb"] = float(values["mem_gb"])
        values["extra"] = dict(values.get("extra") or {})
        values["setup"] = list(values.get("setup") or [])
        return cls(**values)


def _is_int(low: int) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= low


def _is_opt_str(v: Any) -> bool:
    return v is None or (isinstance(v, str) and bool(v.strip()))


def _is_flag_value(v: Any) -> bool:
    return isinstance(v, (str, int, float, bool))


_CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "partition": (_is_opt_str, "a partition name"),
    "account": (_is_opt_str, "an account name"),
    "qos": (_is_opt_str, "a QOS name"),
    "nodes": (_is_int(1), "an integer >= 1"),
    "gpus_per_node": (_is_int(0), "an integer >= 0"),
    "tasks_per_node": (_is_int(1), "an integer >= 1"),
    "cpus_per_task": (_is_int(1), "an integer >= 1"),
    "mem_gb": (
        lambda v: v is None or (isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0),
        "a number of GB > 0",
    ),
    "time_min": (_is_int(1), "a number of minutes >= 1"),
    "array_parallelism": (_is_int(1), "an integer >= 1"),
    "requeue": (lambda v: isinstance(v, bool), "true or false"),
    "signal_delay_s": (_is_int(0), "a number of seconds >= 0"),
    "extra": (
        lambda v: (
            v is None
            or (
                isinstance(v, Mapping)
                and all(isinstance(k, str) and k and _is_flag_value(x) for k, x in v.items())
            )
        ),
        "a mapping of sbatch flag names to values",
    ),
    "setup": (
        lambda v: v is None or (isinstance(v, list) and all(isinstance(line, str) for line in v)),
        "a list of shell lines",
    ),
}


def make_executor(folder: Path, settings: SlurmSettings, *, name: str) -> Any:
    """A submitit executor for Slurm (never the local fallback) with ``settings``; logs go to ``folder``.

    Raises:
        ConfigError: submitit is not installed.
        SaipError: ``sbatch`` is not on PATH.
    """
    submitit = require_submitit()
    if shutil.which("sbatch") is None:
        raise SaipError("the Slurm launcher needs sbatch, which is not on PATH (is this a Slurm login node?)")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    executor = submitit.AutoExecutor(folder=folder, cluster="slurm")
    params: dict[str, Any] = {
        "name": name,
        "timeout_min": settings.time_min,
        "nodes": settings.nodes,
        "tasks_per_node": settings.tasks_per_node,
        "cpus_per_task": settings.cpus_per_task,
        "slurm_array_parallelism": settings.array_parallelism,
        "slurm_signal_delay_s": settings.signal_delay_s,
    }
    if settings.gpus_per_node > 0:  # --gpus-per-node=0 is refused on clusters without GPUs
        params["gpus_per_node"] = settings.gpus_per_node
    if settings.mem_gb is not None:
        params["mem_gb"] = settings.mem_gb
    for key in ("partition", "account", "qos"):
        if getattr(settings, key):
            params[f"slurm_{key}"] = getattr(settings, key)
    if settings.setup:
        params["slurm_setup"] = list(settings.setup)
    flags: dict[str, Any] = {"requeue": True} if settings.requeue else {"no-requeue": True}
    flags.update({k: v for k, v in settings.extra.items() if v is not False})
    params["slurm_additional_parameters"] = flags
    executor.update_parameters(**params)
    return executor


def submit(executor: Any, fn: Callable, *args: Any) -> Any:
    """Submit ``fn(*args)`` as one Slurm job; the submitit Job.

    Raises:
        SaipError: sbatch refused the job (an unknown partition, a limit); its own error line. Nothing is
            queued and the executor's folder holds nothing of it.
    """
    with _sbatch_errors(executor):
        return executor.submit(fn, *args)


def submit_array(executor: Any, fns: Sequence[Callable]) -> list[Any]:
    """Submit each of ``fns`` (no arguments) as one task of one job array (a single sbatch call), at most
    ``array_parallelism`` running at once; their submitit Jobs, ids ``ARRAYID_INDEX``, in order.

    Raises:
        SaipError: sbatch refused the array; as :func:`submit`.
    """
    if not fns:
        return []
    with _sbatch_errors(executor):
        return list(executor.submit_array(list(fns)))


@contextmanager
def _sbatch_errors(executor: Any) -> Iterator[None]:
    submitit = require_submitit()
    folder = Path(executor.folder)
    before = set(folder.iterdir()) if folder.is_dir() else set()
    try:
        yield
    except (submitit.core.utils.FailedJobError, submitit.core.utils.FailedSubmissionError) as err:
        for leftover in set(folder.iterdir()) - before:  # submitit's pickle and script of the refused job
            if leftover.is_file() or leftover.is_symlink():
                leftover.unlink()
        raise SaipError(f"sbatch refused the job: {_error_line(str(err))}") from None


def _error_line(text: str) -> str:
    """sbatch's own error line (its last ``error:`` line, else the last line)."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    return (errors or lines or ["no message"])[-1]


def job_states(job_ids: Sequence[str]) -> dict[str, str]:
    """The state of each job (``"12"``, or an array task ``"12_3"``) as Slurm names it.

    From ``squeue`` (which also knows jobs that ended less than ``MinJobAge`` ago: COMPLETED, FAILED,
    CANCELLED, TIMEOUT, ...), then ``sacct`` for the others where the cluster keeps accounting. A job
    neither knows is :data:`GONE` (``"UNKNOWN"``): with accounting off, a job that ended and was purged. Test
    ``state in ACTIVE_STATES`` to know whether a job may still run.

    Raises:
        SaipError: ``squeue`` is not on PATH.
    """
    ids = list(dict.fromkeys(str(j) for j in job_ids))
    if not ids:
        return {}
    if shutil.which("squeue") is None:
        raise SaipError("cannot ask Slurm for job states: squeue is not on PATH")
    states: dict[str, str] = {}
    base = ",".join(dict.fromkeys(j.split("_")[0] for j in ids))
    # -r: one line per array task; -t all: recently ended jobs too. %F_%K is 12_3 for a task, %A the job id.
    proc = _slurm(["squeue", "-h", "-r", "-t", "all", "-j", base, "-o", "%F|%K|%A|%T"])
    for line in proc.stdout.splitlines():
        parts = line.strip().split("|")
        if len(parts) != 4:
            continue
        array_id, task, job, state = parts
        key = f"{array_id}_{task}" if task not in ("", "N/A", "4294967294") else job
        states[key] = _state_word(state)
    for j in ids:  # an array's own id: its most advanced task's state (one running -> RUNNING)
        tasks = [state for key, state in states.items() if key.startswith(f"{j}_")]
        if j not in states and tasks:
            states[j] = next((s for s in tasks if s in RUNNING_STATES), None) or next(
                (s for s in tasks if s in QUEUED_STATES), tasks[0]
            )
    missing = [j for j in ids if j not in states]
    if missing and shutil.which("sacct") is not None:
        # with accounting_storage/none sacct exits non-zero ("accounting storage is disabled"): nothing to add
        proc = _slurm(["sacct", "-n", "-P", "-X", "-o", "JobID,State", "-j", ",".join(missing)])
        if proc.returncode == 0:
            for line in proc.stdout.splitlines():
                job, _, state = line.strip().partition("|")
                if job in missing and state:
                    states[job] = _state_word(state)
    return {j: states.get(j, GONE) for j in ids}


def _state_word(state: str) -> str:
    return state.split()[0].strip().upper() if state.strip() else GONE  # "CANCELLED by 0" -> CANCELLED


def _slurm(cmd: list[str], timeout: float = 30) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise SaipError(f"{cmd[0]} did not answer within {timeout:.0f} s (is slurmctld up?)") from None


def wait_result(
    job: Any, *, timeout_s: float | None = None, poll_s: float = 1.0, grace_s: float = 10.0
) -> Any:
    """Wait for a submitit job's result without hanging on a job that ended without one.

    submitit's ``job.result()`` waits for the result file; where accounting is off it cannot tell a job that
    died without one (killed, out of memory, cancelled) from one still queued, and waits forever. This asks
    :func:`job_states` too: once the job has left the queue for ``grace_s`` with no result, it gives up.

    Returns:
        What the job's callable returned (the rerun's, after a requeue).

    Raises:
        SaipError: the job ended without a result, or ``timeout_s`` passed; names the job and its log.
        Exception: what submitit raises for a job whose callable raised (``FailedJobError``).
    """
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    gone_since: float | None = None
    while True:
        if job.paths.result_pickle.exists():
            return job.result()
        state = job_states([str(job.job_id)])[str(job.job_id)]
        now = time.monotonic()
        if state in ACTIVE_STATES:
            gone_since = None
        else:
            gone_since = gone_since or now
            if now - gone_since > grace_s and not job.paths.result_pickle.exists():
                raise SaipError(
                    f"Slurm job {job.job_id} ended ({state}) without a result; see {job.paths.stderr}"
                )
        if deadline is not None and now > deadline:
            raise SaipError(
                f"Slurm job {job.job_id} not done after {timeout_s:.0f} s ({state}); see {job.paths.stderr}"
            )
        time.sleep(poll_s)


def torch_env_from_slurm(
    master_port: int | None = None, *, environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """torch.distributed's environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``,
    ``MASTER_ADDR``, ``MASTER_PORT``) for this Slurm task, from Slurm's variables.

    ``MASTER_ADDR`` is the job's first host (``scontrol show hostnames``, or the node list itself where it
    names one host); ``MASTER_PORT`` defaults to ``20000 + job id % 20000``, so two jobs sharing a node do
    not collide.

    Args:
        master_port: the rendezvous port (default: from the job id).
        environ: the variables to read (default: ``os.environ``).

    Raises:
        SaipError: not inside a Slurm task (``SLURM_PROCID`` / ``SLURM_NTASKS`` unset), or the node list
            cannot be read.
    """
    env = os.environ if environ is None else environ
    missing = [k for k in ("SLURM_PROCID", "SLURM_NTASKS", "SLURM_JOB_ID") if not env.get(k)]
    if missing:
        raise SaipError(f"not inside a Slurm task: {', '.join(missing)} not set (run it under srun / sbatch)")
    world = int(env["SLURM_NTASKS"])
    nodes = int(
        env.get("SLURM_STEP_NUM_NODES") or env.get("SLURM_JOB_NUM_NODES") or env.get("SLURM_NNODES") or 1
    )
    node_id = int(env.get("SLURM_NODEID", 0))
    per_node = _tasks_per_node(env, node_id)
    if per_node is None:
        per_node = max(1, world // max(1, nodes))
    nodelist = (
        env.get("SLURM_STEP_NODELIST") or env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST", "")
    )
    port = master_port if master_port is not None else 20000 + int(env["SLURM_JOB_ID"]) % 20000
    return {
        "RANK": str(int(env["SLURM_PROCID"])),
        "WORLD_SIZE": str(world),
        "LOCAL_RANK": str(int(env.get("SLURM_LOCALID", 0))),
        "LOCAL_WORLD_SIZE": str(per_node),
        "MASTER_ADDR": first_host(nodelist),
        "MASTER_PORT": str(port),
    }


def _tasks_per_node(env: Mapping[str, str], node_id: int) -> int | None:
    """This node's task count from ``SLURM_STEP_TASKS_PER_NODE`` / ``SLURM_TASKS_PER_NODE`` (``2(x3),1``)."""
    for key in ("SLURM_STEP_TASKS_PER_NODE", "SLURM_TASKS_PER_NODE"):
        spec = env.get(key, "")
        if spec:
            counts: list[int] = []
            for part in spec.split(","):
                m = re.fullmatch(r"(\d+)(?:\(x(\d+)\))?", part.strip())
                if m is None:
                    break
                counts += [int(m.group(1))] * int(m.group(2) or 1)
            else:
                if counts:
                    return counts[min(node_id, len(counts) - 1)]
    spec = env.get("SLURM_NTASKS_PER_NODE", "")
    return int(spec) if spec.isdigit() else None


def first_host(nodelist: str) -> str:
    """The first host of a Slurm node list (``node[03-05,7],gpu1`` -> ``node03``).

    Raises:
        SaipError: the list is empty, or is a range ``scontrol`` is not here to expand.
    """
    nodelist = nodelist.strip()
    if not nodelist:
        raise SaipError("no Slurm node list (SLURM_JOB_NODELIST unset)")
    if "[" not in nodelist:
        return nodelist.split(",")[0]
    if shutil.which("scontrol") is not None:
        proc = _slurm(["scontrol", "show", "hostnames", nodelist], timeout=10)
        hosts = proc.stdout.split()
        if proc.returncode == 0 and hosts:
            return hosts[0]
    m = re.match(r"([^\[,]*)\[(\d+)", nodelist)  # prefix[03-05,...]: the first number, zero-padded as written
    if m is None:
        raise SaipError(f"cannot read the Slurm node list {nodelist!r}")
    return m.group(1) + m.group(2)


def restart_count(environ: Mapping[str, str] | None = None) -> int:
    """How many times this job was requeued before this run (``SLURM_RESTART_COUNT``, 0 on the first)."""
    env = os.environ if environ is None else environ
    value = env.get("SLURM_RESTART_COUNT", "")
    return int(value) if value.isdigit() else 0


def requeue_in_progress() -> bool:
    """True while Slurm is requeueing this job (``scontrol requeue``, preemption): the controller's restart
    count is already one more than the run's own ``SLURM_RESTART_COUNT``. False outside a Slurm job."""
    job = os.environ.get("SLURM_JOB_ID")
    if not job or shutil.which("scontrol") is None:
        return False
    try:
        proc = subprocess.run(
            ["scontrol", "-o", "show", "job", job], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    m = re.search(r"\bRestarts=(\d+)", proc.stdout)
    return m is not None and int(m.group(1)) > restart_count()


class Requeued(SystemExit):
    """Raised in a job being requeued: the process ends without a result, and the rerun writes it.

    A SystemExit, not an Exception, because submitit records any Exception as the job's result.
    """


_GUARDS = 0  # how many guarded __call__s this process is inside (a subclass calling super().__call__)


class _PreemptSignal:
    """While active, submitit's preemption signal (USR2) first asks a graceful stop (SIGTERM) of a loop that
    listens for one, then lets submitit checkpoint and requeue once the callable has stopped."""

    def __init__(self) -> None:
        self.requested = False
        self._sig: int | None = None
        self._submitit: Any = None
        self._term_at_entry: Any = None

    def __enter__(self) -> _PreemptSignal:
        if os.environ.get("SUBMITIT_EXECUTOR") and threading.current_thread() is threading.main_thread():
            name = "SIG" + os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2")
            sig = getattr(signal, name, None)
            handler = signal.getsignal(sig) if sig is not None else None
            if callable(handler):  # submitit's checkpoint_and_try_requeue
                self._sig, self._submitit = sig, handler
                self._term_at_entry = signal.getsignal(signal.SIGTERM)
                signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested or signal.getsignal(signal.SIGTERM) == self._term_at_entry:
            # nothing listens for a graceful stop: submitit's own handling (checkpoint, requeue, exit now)
            self._submitit(signum, frame)
            return
        self.requested = True
        log.warning(
            "%s: time limit near or preempted; stopping after this step to requeue",
            signal.Signals(signum).name,
        )
        signal.raise_signal(signal.SIGTERM)

    def hand_over(self) -> None:
        """Checkpoint and requeue through submitit: on rank 0 it raises SystemExit (requeued) or
        ``UncompletedJobError`` (not requeued: too many time-outs); on the other ranks it returns."""
        self._submitit(self._sig, None)

    def __exit__(self, *exc: object) -> None:
        if self._sig is not None:
            signal.signal(self._sig, self._submitit)


def _call_guarded(call: Callable[..., Any], self: Requeueable, args: tuple, kwargs: dict) -> Any:
    """Run a Requeueable's ``__call__``: on a requeue, end without a result (see the module docstring)."""
    global _GUARDS
    if _GUARDS:  # already inside the guard (a subclass's __call__ calling super().__call__)
        return call(self, *args, **kwargs)
    if restart_count() > 0:
        self.resuming = True
    _GUARDS += 1
    try:
        with _PreemptSignal() as preempt:
            try:
                return call(self, *args, **kwargs)
            except Exception:
                if preempt.requested:
                    preempt.hand_over()
                    raise Requeued(1) from None  # a rank other than 0: rank 0 requeues the job
                if requeue_in_progress():
                    job = os.environ.get("SLURM_JOB_ID")
                    log.warning("Slurm job %s is being requeued: exiting without a result", job)
                    raise Requeued(1) from None
                raise
    finally:
        _GUARDS -= 1


def _guarded(call: Callable[..., Any]) -> Callable[..., Any]:
    # The wrapper only names _call_guarded (pickled by reference), so a Requeueable defined in __main__ or a
    # test module, which cloudpickle pickles by value, still runs this module's guard.
    def __call__(self: Requeueable, *args: Any, **kwargs: Any) -> Any:
        return _call_guarded(call, self, args, kwargs)

    __call__.__doc__ = call.__doc__
    __call__._requeue_guarded = True  # type: ignore[attr-defined]
    return __call__


class Requeueable:
    """Base of a submitit job callable that continues after Slurm requeues it.

    Subclasses either implement :meth:`run` or override ``__call__`` (it is wrapped all the same). On the
    rerun after a requeue :attr:`resuming` is True: resume from the run's last checkpoint. Compatible with
    ``submitit.helpers.Checkpointable``: :meth:`checkpoint` resubmits a copy of this object with
    ``resuming=True``. See the module docstring for what happens on USR2 and on ``scontrol requeue``.

    Example::

        class Pretrain(Requeueable):
            def __init__(self, config):
                super().__init__()
                self.config = config

            def run(self):
                return train(self.config, resume=self.resuming)
    """

    #: True on a rerun: after checkpoint() or a requeue (``SLURM_RESTART_COUNT`` > 0).
    resuming: bool = False

    def __init__(self) -> None:
        self.resuming = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        call = cls.__dict__.get("__call__")
        if call is not None and not getattr(call, "_requeue_guarded", False):
            cls.__call__ = _guarded(call)  # type: ignore[method-assign]

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.run(*args, **kwargs)

    def run(self, *args: Any, **kwargs: Any) -> Any:
        """The job's work; read :attr:`resuming` to know whether to resume."""
        raise NotImplementedError(f"{type(self).__name__} must implement run() or __call__()")

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        """What submitit requeues on USR2: a copy of this callable with ``resuming=True``, same arguments."""
        submitit = require_submitit()
        clone = copy.copy(self)
        clone.resuming = True
        return submitit.helpers.DelayedSubmission(clone, *args, **kwargs)


Requeueable.__call__ = _guarded(Requeueable.__call__)  # type: ignore[method-assign]
