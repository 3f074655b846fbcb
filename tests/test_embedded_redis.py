"""A default ``callstream serve`` (no REDIS_URL, the relative data dir ``.callstream``) and the operator
commands run next to it: they find its embedded Redis through the data dir, and otherwise say which Redis
they use and why."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from receiver.embedded import free_port
from tests.conftest import FIXTURES, Run
from tests.support.serve import CONFIG_VARIABLES, ServeProcess

CALL = "8a9c1b52-3d4c-11ef-bef9-0242ac110005"
RECORD = Path(".callstream") / "redis" / "server.json"


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh working directory with nothing configuring callstream."""
    monkeypatch.chdir(tmp_path)
    for name in CONFIG_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return tmp_path


@pytest.fixture
def cli(here: Path, callstream: Run) -> Run:
    """``callstream ARGS`` in this process, in the fresh directory."""
    return callstream


def running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


@pytest.mark.slow
def test_operator_commands_use_the_embedded_redis_of_the_serve_in_this_directory(here: Path, cli: Run) -> None:
    port = free_port()
    with ServeProcess(["serve", "--port", str(port)], cwd=here) as serve:
        url = serve.wait_for(r"started embedded Redis at (redis://\S+) \(data in \.callstream/redis\)").group(1)
        hint = serve.wait_for("follow transitions with: (.*)").group(1)
        assert hint == f"{sys.executable} -m receiver.cli tail (from this directory)"
        serve.wait_for("Uvicorn running")
        record = json.loads(RECORD.read_text())
        assert record["url"] == url

        code, out, _ = cli("replay", str(FIXTURES / "vobiz" / "answered.json"), "--url", f"http://127.0.0.1:{port}")
        assert code == 0 and out.count(": applied ") == 3
        note = (
            f"using Redis at {url}: the embedded Redis of the callstream serve running with data dir .callstream "
            f"({RECORD})\n"
        )
        code, out, err = cli("tail", "--no-follow")
        assert (code, err) == (0, f"callstream tail: {note}")
        changes = [" ".join(line.split()[-5:-2]) for line in out.splitlines()[1:]]
        assert changes == ["new -> ringing", "ringing -> answered", "answered -> completed"]
        code, out, err = cli("calls", "show", "vobiz", CALL)
        assert (code, err) == (0, f"callstream calls: {note}")
        assert "state     completed   attempt 1   version 3" in out
        code, out, err = cli("stats")
        assert (code, err) == (0, f"callstream stats: {note}")
        assert "callstream:{0}:transitions: length 3" in out

        # A second serve cannot share that data directory: two servers would write one append-only file.
        code, _, err = cli("serve", "--port", str(free_port()))
        assert code == 1
        assert (
            f"callstream: .callstream/redis is in use by another embedded redis-server (pid {record['pid']}, {url})"
            in err
        )

        assert serve.terminate() == 0
        assert not running(record["pid"]), "SIGTERM to serve stops its embedded Redis too"
        assert not RECORD.exists()

    # With serve stopped, a command says which Redis it falls back to, and why.
    code, _, err = cli("calls", "show", "vobiz", CALL, "--prefix", "cstest-no-such-prefix")
    assert err.startswith(
        "callstream calls: using Redis at redis://127.0.0.1:6379/0: no --redis-url, REDIS_URL or [redis] url "
        "given, and no callstream serve with data dir .callstream is running\n"
    )
    assert code in (1, 3)  # 3: a Redis answers there, without that call; 1: nothing answers there
