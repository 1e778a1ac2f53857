"""The cluster fixture's own decisions, without starting anything: install only what is missing, and never
skip silently under CI."""

from __future__ import annotations

import subprocess

import pytest

from tests import slurm_cluster as helper


def test_installs_with_apt_only_when_a_program_is_missing(monkeypatch):
    ran: list[str] = []

    def fake_run(cmd, **kwargs):
        ran.append(cmd[-1])
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(helper.subprocess, "run", fake_run)
    monkeypatch.setattr(helper.os, "geteuid", lambda: 0)
    monkeypatch.setattr(helper.shutil, "which", lambda name: f"/usr/bin/{name}")
    helper._ensure_installed()
    assert ran == []  # everything on PATH: no apt-get
    installed: set[str] = set()
    monkeypatch.setattr(
        helper.shutil, "which", lambda name: f"/usr/bin/{name}" if name != "slurmctld" or installed else None
    )
    monkeypatch.setattr(helper.subprocess, "run", lambda cmd, **kw: (installed.add("x"), fake_run(cmd))[1])
    helper._ensure_installed()
    assert ran == [helper.APT_INSTALL]


def test_missing_programs_without_root_say_what_to_run(monkeypatch):
    monkeypatch.setattr(helper.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(helper.shutil, "which", lambda name: None if name == "sbatch" else f"/usr/bin/{name}")
    with pytest.raises(helper.ClusterUnavailable, match="sbatch not on PATH.*apt-get"):
        helper._ensure_installed()


@pytest.mark.parametrize(("ci", "outcome"), [("true", pytest.fail.Exception), ("", pytest.skip.Exception)])
def test_unavailable_fails_under_ci_and_skips_elsewhere(monkeypatch, ci, outcome):
    monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match="no Slurm cluster: slurmd exited"):
        helper.unavailable("no Slurm cluster: slurmd exited with 1")


def test_slurm_conf_names_the_session_folder_and_quick_requeue(tmp_path):
    conf = helper.slurm_conf(tmp_path, "node1", 4, 8000, (7001, 7002), tmp_path / "munge" / "munge.socket")
    lines = dict(line.split("=", 1) for line in conf.splitlines() if "=" in line and not line.startswith("#"))
    assert lines["JobRequeue"] == "1" and lines["KillWait"] == str(helper.KILL_WAIT_S)
    assert lines["AuthInfo"] == f"socket={tmp_path}/munge/munge.socket,cred_expire={helper.CRED_EXPIRE_S}"
    assert helper.CRED_EXPIRE_S >= 5  # Slurm ignores smaller values (and waits its default 120 s)
    for key in ("StateSaveLocation", "SlurmdSpoolDir", "SlurmctldPidFile", "SlurmdLogFile"):
        assert lines[key].startswith(str(tmp_path)), key
    assert "NodeName=node1 NodeAddr=127.0.0.1 CPUs=4 RealMemory=8000 State=UNKNOWN" in conf
