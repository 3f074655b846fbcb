"""The example consumer as a real process: killed mid-way with SIGKILL, its group still handles every
transition, and acknowledges each exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
import redis

from statemachine.keys import Keys

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "print_consumer.py"
TOTAL = 60


def start(redis_url: str, prefix: str, name: str) -> subprocess.Popen[bytes]:
    args = [
        sys.executable, str(EXAMPLE), "--redis-url", redis_url, "--prefix", prefix, "--group", "printer",
        "--name", name, "--json", "--delay-ms", "20", "--claim-idle-ms", "500",
    ]  # fmt: skip
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env={**os.environ})


def lines_until(process: subprocess.Popen[bytes], wanted: int, within: float = 30.0) -> list[dict[str, object]]:
    assert process.stdout is not None
    found: list[dict[str, object]] = []
    deadline = time.monotonic() + within
    while len(found) < wanted:
        assert time.monotonic() < deadline, f"only {len(found)} lines"
        line = process.stdout.readline()
        assert line, "consumer exited"
        found.append(orjson.loads(line))
    return found


@pytest.mark.slow
def test_killed_consumer_loses_nothing_and_nothing_is_acknowledged_twice(
    redis_url: str, r: redis.Redis, keys: Keys, prefix: str
) -> None:
    """SIGKILL one consumer mid-way, start another: every entry is printed; the only entry printed twice
    can be the one the killed process printed last (handled, not yet acknowledged); nothing stays pending."""
    stream = keys.transitions()
    published = []
    for number in range(TOTAL):
        fields = {"kind": "transition", "source": "pbx", "provider": "vobiz", "call_id": f"call-{number}",
                  "from_state": "new", "to_state": "ringing", "name": "ringing", "version": 1, "attempt": 1,
                  "replay": 0, "event": orjson.dumps({
                      "source": "pbx", "provider": "vobiz", "call_id": f"call-{number}", "event": "ringing",
                      "provider_event": "Ring", "provider_status": "ringing", "dedupe_key": f"call-{number}:Ring",
                      "received_at": "2026-05-29T12:00:00.000Z"})}  # fmt: skip
        published.append(r.xadd(stream, fields).decode())

    with start(redis_url, prefix, "first") as first:
        before_kill = lines_until(first, 15)
        first.send_signal(signal.SIGKILL)
        rest, _ = first.communicate(timeout=10)
    before_kill += [orjson.loads(line) for line in rest.splitlines()]
    with start(redis_url, prefix, "second") as second:
        after = lines_until(second, TOTAL - len(before_kill), within=60)
        deadline = time.monotonic() + 30
        while r.xpending(stream, "printer")["pending"] and time.monotonic() < deadline:
            time.sleep(0.05)
        second.send_signal(signal.SIGTERM)
        rest, _ = second.communicate(timeout=10)
    after += [orjson.loads(line) for line in rest.splitlines()]

    printed = [str(line["id"]) for line in before_kill + after]
    assert set(printed) == set(published), "some transitions were never handled"
    twice = {entry_id for entry_id in printed if printed.count(entry_id) > 1}
    assert twice <= {before_kill[-1]["id"]}
    assert r.xpending(stream, "printer")["pending"] == 0
    assert second.returncode == 0
    taken_over = [line for line in after if line["deliveries"] != 1]
    assert taken_over, "the second consumer took nothing over from the killed one"
    assert all(line["deliveries"] == 2 for line in taken_over)
