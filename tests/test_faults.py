"""Faults with real processes: a private redis-server (never the shared one) and uvicorn receivers.

The promise under test: a 2xx means the event is in Redis (durably, with ``appendfsync always``);
anything else means "retry", and the retry is safe. Redis down or slow gives a prompt 503 with a JSON
error, never a hung request; nothing is ever half applied; the receiver recovers by itself.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis

from statemachine.keys import Keys
from tests.support.histories import RANK, stream_entries
from tests.support.processes import Receiver, RedisServer, wait_until

pytestmark = pytest.mark.slow

PREFIX = "cs-faults"
KEYS = Keys(PREFIX)
FORM = {"content-type": "application/x-www-form-urlencoded"}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    """A private redis-server with every write fsynced before it is acknowledged."""
    with RedisServer(tmp_path / "redis", appendfsync="always").start() as server:
        yield server


@pytest.fixture
def client(server: RedisServer) -> Iterator[redis.Redis]:
    client = server.client()
    yield client
    client.close()


def event(call_id: str, name: str) -> bytes:
    """A Vobiz callback for ``call_id``; the Hangup reports an answered call (completed)."""
    extra = "&AnswerTime=2026-05-29+17%3A30%3A09&HangupCause=NORMAL_CLEARING" if name == "Hangup" else ""
    return f"Event={name}&CallUUID={call_id}{extra}".encode()


CALL_EVENTS = ("Ring", "StartApp", "Hangup")


def post(receiver: Receiver, body: bytes, timeout_s: float = 10) -> httpx.Response:
    return httpx.post(receiver.url + "/webhooks/vobiz", content=body, headers=FORM, timeout=timeout_s)


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["error"]["code"] == "redis_unavailable"


def assert_whole(client: redis.Redis) -> dict[str, list[dict[str, Any]]]:
    """Nothing half applied: each call hash agrees with its own entries (count, last state, history)."""
    entries = stream_entries(client, KEYS.transitions())
    by_call: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for entry in entries:
        by_call[entry["call_id"]].append(entry)
    for call_id, mine in by_call.items():
        state, version, history = client.hmget(KEYS.call("vobiz", call_id), "state", "version", "history")
        assert int(version) == len(mine), (call_id, mine)
        assert [int(entry["version"]) for entry in mine] == list(range(1, len(mine) + 1))
        assert state.decode() == mine[-1]["to_state"]
        assert history.decode().split() == [entry["id"] for entry in mine]
        ranks = [RANK[entry["to_state"]] for entry in mine]
        assert ranks == sorted(set(ranks)), mine
    return by_call


def test_redis_down_gives_503_and_the_receiver_recovers(tmp_path: Path, server: RedisServer) -> None:
    """Redis stopped mid-call: prompt 503s with a JSON error, nothing half applied; once Redis is back
    the same receiver accepts the retries and the call completes normally."""
    with Receiver(tmp_path, server.url, PREFIX, workers=1, redis_timeout_s=1).start() as receiver:
        assert post(receiver, event("down-1", "Ring")).status_code == 200
        server.kill()
        started = time.monotonic()
        assert_unavailable(post(receiver, event("down-1", "StartApp")))
        assert time.monotonic() - started < 3
        ready = httpx.get(receiver.url + "/readyz", timeout=5)
        assert ready.status_code == 503 and ready.json()["error"]["code"] == "redis_unavailable"

        server.start()
        client = server.client()
        assert client.hmget(KEYS.call("vobiz", "down-1"), "state", "version") == [b"ringing", b"1"]
        assert post(receiver, event("down-1", "StartApp")).json()["results"][0]["outcome"] == "applied"
        assert post(receiver, event("down-1", "Hangup")).json()["results"][0]["outcome"] == "applied"
        assert httpx.get(receiver.url + "/readyz", timeout=5).status_code == 200
        calls = assert_whole(client)
        assert [entry["to_state"] for entry in calls["down-1"]] == ["ringing", "answered", "completed"]
        client.close()


def test_every_acknowledged_event_survives_a_redis_crash(tmp_path: Path, server: RedisServer) -> None:
    """With appendfsync always, every event that got a 2xx is still there after redis-server is
    SIGKILLed and restarted from its append-only file; retrying any of them is a duplicate."""
    with Receiver(tmp_path, server.url, PREFIX, workers=1).start() as receiver:
        acknowledged = {}
        for n in range(10):
            for name in CALL_EVENTS:
                response = post(receiver, event(f"aof-{n}", name))
                assert response.status_code == 200
                acknowledged[(f"aof-{n}", name)] = response.json()["results"][0]["entry_id"]
        server.kill()
        server.start()
        client = server.client()
        calls = assert_whole(client)
        assert {(call, entry["id"]) for call, mine in calls.items() for entry in mine} == {
            (call, entry_id) for (call, _name), entry_id in acknowledged.items()
        }
        for n in range(10):
            assert calls[f"aof-{n}"][-1]["to_state"] == "completed"
        for call_id, name in acknowledged:
            retry = post(receiver, event(call_id, name))
            assert retry.status_code == 200, retry.text
            assert retry.json()["results"][0]["outcome"] == "duplicate"
        client.close()


async def deliver(base_url: str, bodies: list[bytes], results: dict[bytes, int], stop: threading.Event) -> None:
    """Send bodies from 16 concurrent senders; record each status (0 when the connection failed)."""
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)

    async def sender(client: httpx.AsyncClient) -> None:
        while not queue.empty() and not stop.is_set():
            body = queue.get_nowait()
            try:
                response = await client.post("/webhooks/vobiz", content=body, headers=FORM)
                results[body] = response.status_code
            except httpx.HTTPError:
                results[body] = 0

    async with httpx.AsyncClient(base_url=base_url, timeout=5) as client:
        await asyncio.gather(*(sender(client) for _ in range(16)))


def test_receiver_killed_under_load_loses_nothing_acknowledged(
    tmp_path: Path, server: RedisServer, client: redis.Redis
) -> None:
    """SIGKILL of the master and both workers mid-load: every 2xx'd event is in Redis, nothing is half
    applied, and after a restart the provider's retries complete every call exactly once."""
    bodies = [event(f"load-{n}", name) for name in CALL_EVENTS for n in range(150)]
    results: dict[bytes, int] = {}
    stop = threading.Event()
    receiver = Receiver(tmp_path, server.url, PREFIX, workers=2).start()
    try:
        loader = threading.Thread(target=lambda: asyncio.run(deliver(receiver.url, bodies, results, stop)))
        loader.start()
        wait_until(lambda: len(results) >= 60, 20, "60 deliveries answered")
        receiver.kill()
        stop.set()
        loader.join(30)
    finally:
        receiver.stop()
    acknowledged = [body for body, status in results.items() if status == 200]
    assert 60 <= len(acknowledged) < len(bodies)

    calls = assert_whole(client)
    present = {(call, orjson.loads(entry["event"])["provider_event"]) for call, mine in calls.items() for entry in mine}
    for body in acknowledged:
        fields = dict(part.split("=", 1) for part in body.decode().split("&"))
        call_id = fields["CallUUID"]
        marked = client.hexists(KEYS.call("vobiz", call_id), f"d:{call_id}:{fields['Event']}")
        assert marked or (call_id, fields["Event"]) in present, body

    with Receiver(tmp_path, server.url, PREFIX, workers=2).start() as restarted:
        retried = asyncio.run(resend(restarted.url, bodies))
    assert set(retried) == {200}
    calls = assert_whole(client)
    assert sorted(calls) == sorted(f"load-{n}" for n in range(150))
    for mine in calls.values():
        assert mine[-1]["to_state"] == "completed"
        assert sum(entry["to_state"] == "completed" for entry in mine) == 1


async def resend(base_url: str, bodies: list[bytes]) -> list[int]:
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        statuses = []
        for start in range(0, len(bodies), 32):
            replies = await asyncio.gather(
                *(client.post("/webhooks/vobiz", content=body, headers=FORM) for body in bodies[start : start + 32])
            )
            statuses += [reply.status_code for reply in replies]
        return statuses


def pause_redis(server: RedisServer, milliseconds: int) -> None:
    """Suspend every other client of the private server (the command itself returns at once)."""
    pauser = server.client()
    pauser.execute_command("CLIENT", "PAUSE", str(milliseconds))
    pauser.close()


def test_slow_redis_turns_into_503_within_the_timeout(tmp_path: Path, server: RedisServer) -> None:
    """Redis paused past redis_timeout_seconds (0.5 s): a 503 in about that time, never a hung request;
    the provider's retry afterwards leaves exactly one entry."""
    with Receiver(tmp_path, server.url, PREFIX, workers=1, redis_timeout_s=0.5).start() as receiver:
        assert post(receiver, event("slow-1", "Ring")).status_code == 200
        pause_redis(server, 2500)
        started = time.monotonic()
        assert_unavailable(post(receiver, event("slow-1", "StartApp")))
        assert time.monotonic() - started < 1.5
        time.sleep(max(0.0, 2.6 - (time.monotonic() - started)))
        retry = post(receiver, event("slow-1", "StartApp"))
        assert retry.status_code == 200
        assert retry.json()["results"][0]["outcome"] in {"applied", "duplicate"}
        client = server.client()
        calls = assert_whole(client)
        assert [entry["to_state"] for entry in calls["slow-1"]] == ["ringing", "answered"]
        client.close()


def test_sigterm_finishes_in_flight_requests_and_refuses_new_ones(tmp_path: Path, server: RedisServer) -> None:
    """SIGTERM while a request waits on Redis: that request still gets its 200, new connections are
    refused, and the process exits within the graceful-shutdown period."""
    with Receiver(tmp_path, server.url, PREFIX, workers=1, redis_timeout_s=5, graceful_s=4).start() as receiver:
        assert post(receiver, event("term-1", "Ring")).status_code == 200
        in_flight: dict[str, httpx.Response] = {}
        pause_redis(server, 1500)
        sender = threading.Thread(target=lambda: in_flight.update(reply=post(receiver, event("term-1", "StartApp"))))
        sender.start()
        time.sleep(0.3)
        assert receiver.process is not None
        signalled = time.monotonic()
        receiver.terminate()
        time.sleep(0.3)
        with pytest.raises(httpx.ConnectError):
            post(receiver, event("term-2", "Ring"), timeout_s=2)
        sender.join(10)
        assert in_flight["reply"].status_code == 200
        assert in_flight["reply"].json()["results"][0]["outcome"] == "applied"
        receiver.process.wait(10)
        assert time.monotonic() - signalled < 4 + 1
        client = server.client()
        assert client.hget(KEYS.call("vobiz", "term-1"), "state") == b"answered"
        assert client.exists(KEYS.call("vobiz", "term-2")) == 0
        client.close()
