"""Concurrent deliveries to two real uvicorn worker processes sharing one Redis.

Providers retry in parallel and fan callbacks of one call out at once; two workers may then handle two
callbacks of one call at the same instant. The atomic step must serialize them: each provider event
changes the call at most once and is published at most once, whichever worker wins.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
import redis

from statemachine.keys import Keys
from tests.support.histories import RANK, TERMINAL, stream_entries
from tests.support.processes import Receiver

FORM = {"content-type": "application/x-www-form-urlencoded"}
JSON = {"content-type": "application/json"}

pytestmark = pytest.mark.slow


@pytest.fixture
def receiver(tmp_path: Path, redis_url: str, prefix: str) -> Iterator[Receiver]:
    with Receiver(tmp_path, redis_url, prefix, workers=2).start() as receiver:
        assert len(receiver.worker_pids()) == 2
        yield receiver


async def post_all(base_url: str, requests: list[tuple[str, bytes, dict[str, str]]]) -> list[httpx.Response]:
    """Send every request at once, each on its own connection."""
    limits = httpx.Limits(max_connections=len(requests), max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30) as client:
        return await asyncio.gather(
            *(client.post(path, content=body, headers=headers) for path, body, headers in requests)
        )


async def test_same_callback_at_once_is_applied_once(receiver: Receiver, r: redis.Redis, keys: Keys) -> None:
    """The same Hangup delivered 24 times at once: one applied, 23 duplicates, one entry."""
    body = b"Event=Hangup&CallUUID=conc-1&HangupCause=USER_BUSY&CallStatus=busy"
    replies = await post_all(receiver.url, [("/webhooks/vobiz", body, FORM)] * 24)
    assert [reply.status_code for reply in replies] == [200] * 24
    outcomes = Counter(reply.json()["results"][0]["outcome"] for reply in replies)
    assert outcomes == {"applied": 1, "duplicate": 23}
    entries = stream_entries(r, keys.transitions())
    assert [(e["call_id"], e["from_state"], e["to_state"], e["version"]) for e in entries] == [
        ("conc-1", "new", "busy", "1")
    ]
    assert r.hmget(keys.call("vobiz", "conc-1"), "state", "version") == [b"busy", b"1"]


def vobiz_call(call_id: str) -> list[tuple[str, bytes, dict[str, str]]]:
    events = [
        f"Event=Ring&CallUUID={call_id}&CallStatus=ringing",
        f"Event=StartApp&CallUUID={call_id}&CallStatus=in-progress",
        f"Event=MachineDetection&CallUUID={call_id}&Machine=false",
        f"Event=Hangup&CallUUID={call_id}&HangupCause=NORMAL_CLEARING&AnswerTime=2026-05-29+17%3A30%3A09",
    ]
    return [("/webhooks/vobiz", event.encode(), FORM) for event in events]


def minivoice_call(call_id: str) -> list[tuple[str, bytes, dict[str, str]]]:
    documents = [
        {"event": "call.answered", "created_at": "2026-05-29T12:00:07Z", "call": {"id": call_id}},
        {"event": "call.completed", "created_at": "2026-05-29T12:10:00Z", "call": {"id": call_id}},
    ]
    return [("/webhooks/minivoice", orjson.dumps(document), JSON) for document in documents]


async def test_callbacks_of_one_call_at_once_keep_the_contract(receiver: Receiver, r: redis.Redis, keys: Keys) -> None:
    """Every callback of 12 calls, each sent 3 times, all at once: each call ends in its terminal state
    with one terminal transition, rising ranks, consecutive versions, one annotation, no doubles."""
    calls = {f"vz-{n}": ("vobiz", vobiz_call(f"vz-{n}")) for n in range(8)}
    calls |= {f"mv-{n}": ("minivoice", minivoice_call(f"mv-{n}")) for n in range(4)}
    requests = [request for _provider, call in calls.values() for request in call for _ in range(3)]
    replies = await post_all(receiver.url, requests)
    assert all(reply.status_code == 200 for reply in replies), [reply.text for reply in replies[:3]]

    entries = stream_entries(r, keys.transitions())
    for call_id, (provider, _requests) in calls.items():
        mine = [entry for entry in entries if entry["call_id"] == call_id]
        transitions = [entry for entry in mine if entry["kind"] == "transition"]
        ranks = [RANK[entry["to_state"]] for entry in transitions]
        assert ranks == sorted(set(ranks)), (call_id, mine)
        assert [entry["to_state"] for entry in transitions if entry["to_state"] in TERMINAL] == ["completed"]
        assert [int(entry["version"]) for entry in mine] == list(range(1, len(mine) + 1))
        assert all(entry["attempt"] == "1" for entry in mine)
        expected_annotations = 1 if provider == "vobiz" else 0
        assert sum(entry["kind"] == "annotation" for entry in mine) == expected_annotations
        dedupe = Counter(orjson.loads(entry["event"])["dedupe_key"] for entry in mine)
        assert max(dedupe.values()) == 1, dedupe
        state, version = r.hmget(keys.call(provider, call_id), "state", "version")
        assert (state, int(version or 0)) == (b"completed", len(mine))
    applied = Counter(reply.json()["results"][0]["outcome"] for reply in replies)
    assert applied["applied"] + applied["annotation"] == len(entries)
