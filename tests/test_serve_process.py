"""`callstream serve` as a real process: the five-minute path a new user takes."""

from __future__ import annotations

import subprocess
from pathlib import Path

import orjson
import pytest

from receiver.embedded import free_port
from tests.conftest import FIXTURES
from tests.support.serve import CLI, ServeProcess, clean_environment


@pytest.mark.slow
def test_serve_with_embedded_redis_then_replay_and_tail(tmp_path: Path) -> None:
    """With no REDIS_URL, serve starts an embedded Redis and prints its URL; a replayed scenario's
    transitions are then visible with `callstream tail`."""
    env = clean_environment()
    port = free_port()
    with ServeProcess(["serve", "--port", str(port), "--data-dir", str(tmp_path)], cwd=tmp_path, env=env) as server:
        redis_url = server.wait_for(r"started embedded Redis at (redis://\S+)").group(1)
        server.wait_for("Uvicorn running")
        fixture = FIXTURES / "vobiz" / "answered.json"
        replay = subprocess.run(
            [*CLI, "replay", str(fixture), "--url", f"http://127.0.0.1:{port}"],
            capture_output=True,
            text=True,
            env=env,
            timeout=30,
            check=False,
        )
        assert replay.returncode == 0, replay.stdout + replay.stderr
        assert replay.stdout.count("\n200 /webhooks/vobiz ") == 3
        tail = subprocess.run(
            [*CLI, "tail", "--redis-url", redis_url, "--no-follow", "--json"],
            capture_output=True,
            text=True,
            env=env,
            timeout=30,
            check=True,
        )
        entries = [orjson.loads(line) for line in tail.stdout.splitlines()]
        assert [(e["from_state"], e["to_state"]) for e in entries] == [
            ("new", "ringing"),
            ("ringing", "answered"),
            ("answered", "completed"),
        ]
        assert server.terminate() == 0
    assert (tmp_path / "redis" / "appendonly.aof").exists() or any((tmp_path / "redis").glob("appendonly*"))


def test_serve_refuses_public_address_with_unverified_sources(tmp_path: Path) -> None:
    """Without a configuration file every source is unverified, so a non-loopback bind is refused."""
    result = subprocess.run(
        [*CLI, "serve", "--host", "0.0.0.0", "--data-dir", str(tmp_path)],  # noqa: S104
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "refusing to listen on 0.0.0.0 with unverified sources" in result.stderr
