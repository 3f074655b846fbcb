"""The README's first steps, read as text and typed literally in a fresh clone, as a newcomer would.

The run command is the first indented line of the section ``## Two commands`` that runs ``callstream
serve``; the walkthrough is every indented ``$ `` line of ``## Five minutes with it``. Both run in a
``git clone`` of the committed HEAD, with no ``REDIS_URL`` or ``CALLSTREAM_CONFIG``, in that clone's
directory: serve must answer ``/healthz``, the replay must be applied, ``tail`` must show it, and SIGTERM
must stop serve and its embedded Redis. When the README changes, this test reads the new commands; when
they stop working, it fails.

pip's cache is used as it would be on any machine (the clone still installs from its own files); the
first run on a machine downloads the dependencies.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.support.serve import ServeProcess, clean_environment

REPO = Path(__file__).resolve().parents[1]
#: The port every README command uses.
PORT = 8000
INSTALL_AND_START_S = 600
TRANSITIONS = ["new -> ringing", "ringing -> answered", "answered -> completed"]


def section(text: str, title: str) -> list[str]:
    """The lines of the ``## title`` section."""
    lines = text.splitlines()
    start = lines.index(f"## {title}") + 1
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("## ")), len(lines))
    return lines[start:end]


def run_command(text: str) -> str:
    """The README's run command (what the before-stop check types too)."""
    return next(
        line.removeprefix("    ")
        for line in section(text, "Two commands")
        if line.startswith("    ") and "callstream serve" in line
    )


def walkthrough(text: str) -> list[str]:
    """The commands of the walkthrough, in order, without their ``$ `` prompt."""
    return [line.removeprefix("    $ ") for line in section(text, "Five minutes with it") if line.startswith("    $ ")]


def test_the_readme_commands_are_where_this_test_reads_them() -> None:
    """A quick check of the shape the slow test relies on: one run command ending in the walkthrough's serve."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    command = run_command(text)
    steps = walkthrough(text)
    assert command.startswith("python3 -m venv .venv && .venv/bin/pip install")
    assert steps[0] == command.split(" && ")[-1], "the walkthrough starts the server the run command starts"
    assert any("callstream replay fixtures/vobiz/answered.json --url http://127.0.0.1:8000" in s for s in steps)
    assert any("callstream tail --no-follow" in s for s in steps)


def fresh_clone(destination: Path) -> Path:
    """A clone of the repository's committed HEAD, as a newcomer gets it."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.fail(f"this test clones the repository: {REPO} must be a git checkout and git must be on PATH")
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.strip()
    subprocess.run(["git", "clone", "-q", "--no-checkout", str(REPO), str(destination)], check=True)
    subprocess.run(["git", "checkout", "-q", head], cwd=destination, check=True)
    return destination


def port_in_use(port: int) -> bool:
    try:
        httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
    except httpx.TransportError:
        return False
    return True


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def shell(command: str, clone: Path) -> subprocess.CompletedProcess[str]:
    """One walkthrough command, typed in the clone's directory."""
    return subprocess.run(
        ["bash", "-c", command],
        cwd=clone,
        env=clean_environment(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def parent_pid(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


@pytest.mark.slow
@pytest.mark.timeout(INSTALL_AND_START_S + 120)
def test_readme_run_command_and_walkthrough_work_in_a_fresh_clone(tmp_path: Path) -> None:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    command, steps = run_command(text), walkthrough(text)
    if port_in_use(PORT):
        pytest.fail(
            f"port {PORT} is in use: the README's commands use it. Stop what listens there (another callstream "
            "serve, or this test run by someone else at the same time) and run this test again."
        )
    clone = fresh_clone(tmp_path / "callstream")
    env = clean_environment()
    env.pop("PYTHONPATH")  # the clone's own install, nothing else
    with ServeProcess([command], cwd=clone, env=env, command=["bash", "-c"]) as serve:
        deadline = time.monotonic() + INSTALL_AND_START_S
        while not answers(f"http://127.0.0.1:{PORT}/healthz"):
            if serve.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the README's run command did not serve /healthz:\n    {command}\n{serve.output()}")
            time.sleep(0.5)
        output = serve.output()
        assert re.search(r"started embedded Redis at redis://127\.0\.0\.1:\d+/0 \(data in \.callstream/redis\)", output)
        assert "follow transitions with: .venv/bin/callstream tail" in output

        results = {step: shell(step, clone) for step in steps[1:]}
        for step, result in results.items():
            assert result.returncode == 0, f"$ {step}\n{result.stdout}{result.stderr}"
        replay = next(r for s, r in results.items() if "callstream replay fixtures/vobiz/answered.json" in s)
        assert replay.stdout.count(": applied ") == 3, replay.stdout
        tail = next(r for s, r in results.items() if "callstream tail --no-follow" in s)
        assert [t for t in TRANSITIONS if t in tail.stdout] == TRANSITIONS, tail.stdout + tail.stderr

        redis_pid = json.loads((clone / ".callstream" / "redis" / "server.json").read_text())["pid"]
        serve_pid = parent_pid(redis_pid)
        os.kill(serve_pid, signal.SIGTERM)
        serve.finish(timeout_s=30)
        assert gone(serve_pid) and gone(redis_pid), "SIGTERM stops serve and its embedded Redis"
        assert not (clone / ".callstream" / "redis" / "server.json").exists()
