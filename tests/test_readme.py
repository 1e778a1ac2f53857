"""The README's commands, typed as a user would: every CPU-runnable ```bash block, in order, in one folder.

The blocks are read from README.md, a line ending in ``\\`` is joined with the next, and each command runs
with ``bash -c`` in one scratch folder (so a later command sees what an earlier one wrote, as in a shell),
with the test's environment's ``saip`` first on PATH, torch's own thread count (as in a user's shell), no
``SAIP_WORKSPACE``. Each must exit 0.

A command is skipped, by these rules only, when it

* installs software (``pip install``, ``python3 -m venv``): the test already runs inside the installed
  environment, and CI runs the quick start's install itself (``.ci/run``);
* needs what a CPU-only machine with synthetic data lacks: real datasets (a path under ``/data/``) or several
  GPUs (``--nproc-per-node``);
* is a placeholder example, written with ``...`` for the options it leaves out.

So a README edit that adds a command a user cannot run as written breaks this test, unless the command says
so by one of the markers above. Blocks of other languages (plain ``` blocks: the CLI overview, the layout)
are not commands.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
SKIP_MARKERS = ("pip install", "-m venv", "/data/", "--nproc-per-node", "...")


def readme_commands(text: str) -> list[tuple[str, bool]]:
    """``(command, runnable)`` for every command of the README's ```bash blocks, in order."""
    commands: list[tuple[str, bool]] = []
    for block in re.findall(r"^```bash\n(.*?)^```", text, flags=re.M | re.S):
        pending = ""
        for line in block.splitlines():
            pending += line.lstrip() if pending else line
            if pending.endswith("\\"):
                pending = pending[:-1].rstrip() + " "
                continue
            command = pending.strip()
            pending = ""
            if command and not command.startswith("#"):
                code = command.split(" #", 1)[0]  # a trailing comment's "..." or "/data/" does not count
                commands.append((command, not any(marker in code for marker in SKIP_MARKERS)))
    return commands


def test_the_parser_joins_continuations_and_applies_the_markers() -> None:
    text = (
        "intro\n```bash\nsaip a --x 1 \\\n    --y 2   # fast\n# a comment\nsaip b ... --z\n```\n"
        "```\nsaip overview\n```\n```bash\npip install -e . && saip demo\nsaip c --data /data/LUP  # real\n"
        "saip d   # not /data/, not ...\n```\n"
    )
    assert readme_commands(text) == [
        ("saip a --x 1 --y 2   # fast", True),
        ("saip b ... --z", False),
        ("pip install -e . && saip demo", False),
        ("saip c --data /data/LUP  # real", False),
        ("saip d   # not /data/, not ...", True),
    ]


@pytest.mark.slow
def test_readme_commands_run_in_order(tmp_path: Path) -> None:
    commands = [command for command, runnable in readme_commands(README.read_text()) if runnable]
    # The README's own sections must stay covered: synthetic data, pretraining, evaluation, report.
    for needed in ("saip data synth --format lup", "saip pretrain", "saip evaluate", "saip report"):
        assert any(command.startswith(needed) for command in commands), needed
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}
    env.pop("OMP_NUM_THREADS", None)  # a user's shell does not set it: the pose fine-tune takes 36 s, not 45
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.pop("SAIP_WORKSPACE", None)
    for command in commands:
        result = subprocess.run(
            ["bash", "-c", command],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=600,
            check=False,
        )
        assert result.returncode == 0, f"exit {result.returncode}: {command}\n{result.stdout}"
        assert "Traceback" not in result.stdout, command
    assert (tmp_path / "runs" / "smoke" / "backbone.safetensors").is_file()
    assert (tmp_path / "saip-workspace" / "results.sqlite").is_file()
