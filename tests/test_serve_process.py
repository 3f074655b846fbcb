"""`callstream serve` as a real process: the five-minute path a new user takes."""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import orjson
import pytest

from receiver.embedded import free_port
from tests.conftest import FIXTURES

CLI = [sys.executable, "-m", "receiver.cli"]


def read_lines(stream: object, lines: queue.Queue[str]) -> None:
    for line in stream:  # type: ignore[attr-defined]
        lines.put(line)


def wait_for(lines: queue.Queue[str], pattern: str, timeout_s: float = 20) -> re.Match[str]:
    deadline = time.monotonic() + timeout_s
    seen = []
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.2)
        except queue.Empty:
            continue
        seen.append(line)
        match = re.search(pattern, line)
        if match:
            return match
    raise AssertionError(f"{pattern!r} not printed within {timeout_s} s; output:\n{''.join(seen)}")


@pytest.mark.slow
def test_serve_with_embedded_redis_then_replay_and_tail(tmp_path: Path) -> None:
    """With no REDIS_URL, serve starts an embedded Redis and prints its URL; a replayed scenario's
    transitions are then visible with `callstream tail`."""
    env = {name: value for name, value in os.environ.items() if name not in ("REDIS_URL", "CALLSTREAM_CONFIG")}
    port = free_port()
    server = subprocess.Popen(
        [*CLI, "serve", "--port", str(port), "--data-dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=read_lines, args=(server.stdout, lines), daemon=True).start()
    try:
        redis_url = wait_for(lines, r"started embedded Redis at (redis://\S+)").group(1)
        wait_for(lines, "Uvicorn running")
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
    finally:
        server.terminate()
        server.wait(timeout=20)
        assert server.stdout is not None
        server.stdout.close()
    assert server.returncode == 0
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
