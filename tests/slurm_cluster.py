"""A real single-node Slurm cluster for the tests: install, configure, start, wait until idle, stop.

The session fixture :func:`slurm_cluster` gives a test a working ``sbatch`` / ``squeue`` / ``scontrol``:

* an already running cluster (``sinfo`` answers with the environment as it is) is reused and left alone;
* otherwise what is missing is installed (``apt-get install slurm-wlm munge``, only when ``slurmctld``,
  ``slurmd``, ``munged`` or ``sbatch`` is not on PATH), and munged, slurmctld and slurmd are started in the
  foreground on a fresh ``slurm.conf`` in a temporary folder that holds everything they write (state, spool,
  logs, pid files, munged's socket): nothing queued by an earlier session leaks in, and two sessions at once
  (free ports, a munged each) do not meet. ``SLURM_CONF`` points the client commands, submitit and the jobs
  there for the session;
* at the end only the daemons this session started are stopped, by their pids, after cancelling the jobs
  left in the session's own cluster.

When no cluster can be had the test is skipped with the reason, except under CI (``CI=true``) where it fails.
Use it from any conftest with ``from tests.slurm_cluster import slurm_cluster  # noqa: F401``.
``python tests/slurm_cluster.py`` starts one by hand and prints the ``SLURM_CONF`` to export.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import pytest

APT_INSTALL = "apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y slurm-wlm munge"
#: The programs the cluster needs; any missing one triggers :data:`APT_INSTALL`.
PROGRAMS = ("slurmctld", "slurmd", "munged", "munge", "sbatch", "squeue", "sinfo", "scontrol", "scancel")
#: ``KillWait``: seconds between the SIGTERM and the SIGKILL of a job being killed (requeue, cancel, timeout).
KILL_WAIT_S = 5
#: ``AuthInfo=cred_expire``: a requeued job's BeginTime is now + cred_expire + 1 s. Default 120; Slurm 22.05
#: refuses values under 5 ("AuthInfo=cred_expire=2 invalid" in slurmd.log) and falls back to 120.
CRED_EXPIRE_S = 5
PARTITION = "debug"


class ClusterUnavailable(RuntimeError):
    """No Slurm cluster could be started; the message says why."""


@dataclass
class SlurmCluster:
    """A cluster the tests can submit to."""

    hostname: str
    partition: str
    #: Environment variables the Slurm commands need (``SLURM_CONF`` for a cluster this session started).
    env: dict[str, str] = field(default_factory=dict)
    #: The session's folder (slurm.conf, state, spool, logs); None for a reused cluster.
    root: Path | None = None
    #: The daemons this session started (names), empty for a reused cluster.
    started: list[str] = field(default_factory=list)
    #: Seconds ``start_cluster`` took.
    startup_s: float = 0.0

    def run(self, *cmd: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """Run a Slurm command against this cluster (no check on its exit status)."""
        return subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, env={**os.environ, **self.env}
        )

    def cancel_all(self) -> None:
        """Cancel every job of a cluster this session started, and wait until they left the queue (a test
        that failed halfway may leave jobs behind); a reused cluster is left alone."""
        if self.root is not None:
            _cancel_all(self)

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the daemons' logs, for a failure message."""
        if self.root is None:
            return ""
        out = []
        for log in sorted([*(self.root / "log").iterdir(), self.root / "munge" / "munged.log"]):
            if not log.is_file():
                continue
            text = log.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"--- {log}\n" + "\n".join(text))
        return "\n".join(out)


def _run(cmd: list[str], timeout: float = 15, env: dict[str, str] | None = None, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, **kw)


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def _ensure_installed() -> None:
    missing = [p for p in PROGRAMS if shutil.which(p) is None]
    if not missing:
        return
    if os.geteuid() != 0:
        raise ClusterUnavailable(
            f"{', '.join(missing)} not on PATH and not root, so cannot run: {APT_INSTALL}"
        )
    if shutil.which("apt-get") is None:
        raise ClusterUnavailable(f"{', '.join(missing)} not on PATH and no apt-get to install slurm-wlm")
    proc = subprocess.run(["bash", "-c", APT_INSTALL], capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise ClusterUnavailable(f"{APT_INSTALL} failed ({proc.returncode}): {' | '.join(tail)}")
    still = [p for p in PROGRAMS if shutil.which(p) is None]
    if still:
        raise ClusterUnavailable(f"after {APT_INSTALL}: still not on PATH: {', '.join(still)}")


def _munge_works(socket_path: Path) -> bool:
    try:
        cred = _run(["munge", "-n", f"--socket={socket_path}"], timeout=5)
        if cred.returncode != 0:
            return False
        return _run(["unmunge", f"--socket={socket_path}"], timeout=5, input=cred.stdout).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _start_munged(folder: Path) -> tuple[subprocess.Popen[bytes], Path]:
    """Start a munged of this session's own, in the foreground, as the munge user (it refuses root), with its
    socket, pid, seed and log files in ``folder``: a session never depends on, nor stops, another's munged.
    Returns the process and its socket."""
    import grp
    import pwd

    try:
        user = pwd.getpwnam("munge")
        group = grp.getgrgid(user.pw_gid).gr_name
    except KeyError:
        raise ClusterUnavailable("no 'munge' user: is the munge package installed?") from None
    key = Path("/etc/munge/munge.key")
    if not key.is_file():  # the package's postinst normally creates it
        key.parent.mkdir(parents=True, exist_ok=True)
        key.write_bytes(os.urandom(1024))
    os.chown(key.parent, user.pw_uid, user.pw_gid)
    os.chown(key, user.pw_uid, user.pw_gid)
    os.chmod(key, 0o400)
    folder.mkdir(mode=0o755)
    os.chown(folder, user.pw_uid, user.pw_gid)
    sock = folder / "munge.socket"
    out = open(folder.parent / "log" / "munged.out", "wb")  # noqa: SIM115  (the daemon's, for its lifetime)
    proc = subprocess.Popen(
        ["munged", "--foreground", f"--socket={sock}", f"--key-file={key}", f"--pid-file={folder}/munged.pid",
         f"--seed-file={folder}/munged.seed", f"--log-file={folder}/munged.log"],
        user=user.pw_uid, group=group, extra_groups=[], stdout=out, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if _munge_works(sock):
            return proc, sock
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    _stop(proc)
    text = (folder.parent / "log" / "munged.out").read_text(errors="replace").strip().splitlines()[-2:]
    raise ClusterUnavailable(f"munged did not start: {' | '.join(text) or 'munge -n | unmunge still fails'}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _real_memory_mb() -> int:
    """MemTotal in MB less a margin (slurmd must see at least the configured amount)."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            total = int(line.split()[1]) // 1024
            return max(256, total - max(512, total // 20))
    return 1024


def slurm_conf(
    root: Path, hostname: str, cpus: int, memory_mb: int, ports: tuple[int, int], munge_socket: Path
) -> str:
    """The slurm.conf of a one-node cluster whose every folder (and munged) is under ``root``."""
    ctld_port, slurmd_port = ports
    return f"""\
# Written by tests/slurm_cluster.py for one test session; deleted at its end.
ClusterName=saiptest
SlurmctldHost={hostname}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# The session's own munged; a requeued job's BeginTime is now + cred_expire + 1 s (default 120 s).
AuthInfo=socket={munge_socket},cred_expire={CRED_EXPIRE_S}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1,bf_interval=1
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
JobRequeue=1
KillWait={KILL_WAIT_S}
MinJobAge=2
MessageTimeout=10
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd.log
NodeName={hostname} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN
PartitionName={PARTITION} Nodes={hostname} Default=YES MaxTime=INFINITE State=UP
"""


def _stop(proc: subprocess.Popen, wait_s: float = 10) -> None:
    """SIGTERM one process this module started (by its pid), SIGKILL it if it lingers."""
    if proc.poll() is not None:
        return
    try:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=wait_s)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=wait_s)
    except ProcessLookupError:
        pass


def _existing_cluster() -> SlurmCluster | None:
    """The cluster ``sinfo`` reaches with the environment as it is, or None."""
    if shutil.which("sinfo") is None:
        return None
    try:
        proc = _run(["sinfo", "-h", "-o", "%P %a"], timeout=10)
    except subprocess.TimeoutExpired:
        return None
    rows = [line.split() for line in proc.stdout.splitlines() if line.strip()]
    if proc.returncode != 0 or not rows:
        return None
    up = [name for name, avail in rows if avail == "up"] or [name for name, _ in rows]
    default = next((name for name in up if name.endswith("*")), up[0])
    return SlurmCluster(hostname=socket.gethostname().split(".")[0], partition=default.rstrip("*"))


def _wait_idle(cluster: SlurmCluster, procs: dict[str, subprocess.Popen], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    state = "no answer"
    while time.monotonic() < deadline:
        for name, proc in procs.items():
            if proc.poll() is not None:
                raise ClusterUnavailable(f"{name} exited with {proc.returncode}\n{cluster.log_tail()}")
        proc = cluster.run("sinfo", "-h", "-N", "-n", cluster.hostname, "-o", "%T", timeout=10)
        state = proc.stdout.strip() or proc.stderr.strip() or "no answer"
        if proc.returncode == 0 and state.rstrip("*") == "idle":
            return
        time.sleep(0.2)
    reason = cluster.run("sinfo", "-h", "-R").stdout.strip()
    raise ClusterUnavailable(
        f"node {cluster.hostname} not idle after {timeout_s:.0f} s "
        f"(sinfo: {state}; {reason or 'no reason'})\n"
        f"{cluster.log_tail()}"
    )


def start_cluster(timeout_s: float = 60) -> tuple[SlurmCluster, Callable[[], None]]:
    """Reuse the running cluster or start one; return it and the function that stops what was started.

    Raises:
        ClusterUnavailable: Slurm cannot be installed, configured or started; the message says why.
    """
    start = time.monotonic()
    _ensure_installed()
    procs: dict[str, subprocess.Popen] = {}
    root = Path(tempfile.mkdtemp(prefix="saip-slurm-"))
    (root / "log").mkdir()
    cluster: SlurmCluster | None = None
    try:
        cluster = _existing_cluster()
        if cluster is not None:
            shutil.rmtree(root, ignore_errors=True)
        else:
            hostname = _run(["hostname", "-s"]).stdout.strip() or socket.gethostname().split(".")[0]
            root.chmod(0o755)  # munged (the munge user) and the jobs read in it
            procs["munged"], munge_socket = _start_munged(root / "munge")
            for sub in ("state", "spool"):
                (root / sub).mkdir()
            conf = root / "slurm.conf"
            ports = (_free_port(), _free_port())
            memory = _real_memory_mb()
            conf.write_text(slurm_conf(root, hostname, os.cpu_count() or 1, memory, ports, munge_socket))
            conf.chmod(0o644)
            cluster = SlurmCluster(hostname, PARTITION, env={"SLURM_CONF": str(conf)}, root=root)
            env = {**os.environ, "SLURM_CONF": str(conf)}
            for daemon in ("slurmctld", "slurmd"):
                out = open(root / "log" / f"{daemon}.out", "wb")  # noqa: SIM115
                # -D: stay in the foreground, so the pid is ours; a new session keeps Ctrl-C off it.
                procs[daemon] = subprocess.Popen(
                    [daemon, "-D", "-f", str(conf)], env=env, stdout=out, stderr=subprocess.STDOUT,
                    start_new_session=True,
                )  # fmt: skip
            cluster.started = list(procs)
            _wait_idle(cluster, procs, timeout_s)
    except BaseException:
        for proc in reversed(procs.values()):
            _stop(proc)
        shutil.rmtree(root, ignore_errors=True)
        raise
    cluster.startup_s = time.monotonic() - start

    def stop() -> None:
        if "slurmctld" in procs and procs["slurmctld"].poll() is None:
            cluster.cancel_all()
        for proc in reversed(procs.values()):  # slurmd, slurmctld, then munged
            _stop(proc)
        if "slurmd" in procs:
            _wait_steps_reaped()
        if cluster.root is not None:
            shutil.rmtree(cluster.root, ignore_errors=True)

    return cluster, stop


def _wait_steps_reaped(timeout_s: float = 3) -> None:
    """Give init a moment to reap the jobs' slurmstepd processes (they daemonize, so are not our children)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        names = []
        for stat in Path("/proc").glob("[0-9]*/comm"):
            try:
                names.append(stat.read_text().strip())
            except OSError:
                continue
        if "slurmstepd" not in names:
            return
        time.sleep(0.1)


def _cancel_all(cluster: SlurmCluster) -> None:
    """Cancel every job of the session's own cluster and wait (a little) until they are gone."""
    ids = cluster.run("squeue", "-h", "-o", "%A").stdout.split()
    if not ids:
        return
    cluster.run("scancel", *sorted(set(ids)))
    deadline = time.monotonic() + KILL_WAIT_S + 10
    while time.monotonic() < deadline and cluster.run("squeue", "-h", "-o", "%A").stdout.strip():
        time.sleep(0.2)


def unavailable(message: str) -> NoReturn:
    """Fail the test under CI (``CI=true``: a Slurm test must not vanish there), else skip it, with the
    reason."""
    if _in_ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[SlurmCluster]:
    """A Slurm cluster for the session (reused if one runs); skips with the reason, fails under CI."""
    try:
        cluster, stop = start_cluster()
    except (ClusterUnavailable, OSError, subprocess.SubprocessError) as err:
        unavailable(f"no Slurm cluster: {err}")
    patch = pytest.MonkeyPatch()
    for key, value in cluster.env.items():
        patch.setenv(key, value)
    try:
        yield cluster
    finally:
        patch.undo()
        stop()


if __name__ == "__main__":  # a cluster by hand: python tests/slurm_cluster.py
    cluster, stop = start_cluster()
    print(f"up in {cluster.startup_s:.1f} s; started: {cluster.started or 'nothing (reused)'}")
    for key, value in cluster.env.items():
        print(f"export {key}={value}")
    print("Ctrl-C (or SIGTERM) stops it")
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        stop()
