"""Concurrent applies share pipelines, yet each request keeps its own outcome and its own errors."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from redis import exceptions as redis_errors

from receiver.app import create_app
from receiver.embedded import EmbeddedRedis, free_port
from statemachine.errors import StoreUnavailable
from statemachine.keys import Keys
from statemachine.machine import Outcome
from statemachine.pipelined import Lane
from statemachine.states import Trigger
from statemachine.store import CallStore
from tests.conftest import MakeSettings
from tests.support.events import call_event as event


@pytest.fixture
async def named_client(redis_url: str) -> AsyncIterator[tuple[aioredis.Redis, str]]:
    name = f"cstest-batch-{uuid.uuid4().hex[:8]}"
    client = aioredis.Redis.from_url(redis_url, client_name=name)
    yield client, name
    await client.aclose()


async def test_concurrent_applies_share_one_connection_and_keep_their_own_outcomes(
    named_client: tuple[aioredis.Redis, str], keys: Keys
) -> None:
    """Fifty concurrent events go out together over one connection; each gets its own outcome."""
    client, name = named_client
    store = CallStore(client, keys)
    events = [event(f"c{index}", Trigger.RINGING, f"c{index}:Ring") for index in range(50)]
    events.append(event("c0", Trigger.RINGING, "c0:Ring"))  # a retry of the first, in the same batch
    results = await asyncio.gather(*(store.apply(item) for item in events))
    assert [result.outcome for result in results] == [Outcome.APPLIED] * 50 + [Outcome.DUPLICATE]
    assert [result.to_state for result in results] == ["ringing"] * 51
    # Every step went over the one connection the store keeps (besides it, only the one asking here).
    others = [entry for entry in await client.client_list() if entry["name"] == name]
    assert sorted(entry["cmd"].split("|")[0] for entry in others) == ["client", "evalsha"]
    assert await client.xlen(keys.transitions()) == 50
    await store.aclose()


async def test_an_error_reply_fails_only_its_own_request(named_client: tuple[aioredis.Redis, str], keys: Keys) -> None:
    """A step Redis refuses (a call hash holding an unknown state) raises for that request alone."""
    client, _ = named_client
    store = CallStore(client, keys)
    await client.hset(keys.call("src", "broken"), mapping={"state": "bogus", "version": 1})
    outcomes = await asyncio.gather(
        store.apply(event("ok1", Trigger.RINGING, "ok1:Ring")),
        store.apply(event("broken", Trigger.ANSWERED, "broken:StartApp")),
        store.apply(event("ok2", Trigger.ANSWERED, "ok2:StartApp")),
        return_exceptions=True,
    )
    assert [getattr(item, "outcome", None) for item in outcomes] == [Outcome.APPLIED, None, Outcome.APPLIED]
    assert isinstance(outcomes[1], redis_errors.ResponseError)
    assert "no decision for trigger answered from state bogus" in str(outcomes[1])


async def test_a_lone_step_goes_at_once_and_a_busy_loop_writes_each_turn_once(
    named_client: tuple[aioredis.Redis, str], keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lightly loaded, a step on an idle connection is written at once; once a turn's batch held several
    steps, the next turn's steps wait for its end and go as one write (fewer reads and writes for Redis)."""
    client, _ = named_client
    writes: list[int] = []
    submit = Lane.submit

    def counted(lane: Lane, packed: bytes, count: int) -> asyncio.Future[list[Any]] | None:
        future = submit(lane, packed, count)
        if future is not None:
            writes.append(count)
        return future

    monkeypatch.setattr(Lane, "submit", counted)
    store = CallStore(client, keys)
    await store.apply(event("warm", Trigger.RINGING, "warm:Ring"))  # opens the connection
    writes.clear()
    lone = await store.apply(event("lone", Trigger.RINGING, "lone:Ring"))
    assert (lone.outcome, writes) == (Outcome.APPLIED, [1])

    writes.clear()
    first = await asyncio.gather(*(store.apply(event(f"a{i}", Trigger.RINGING, f"a{i}:Ring")) for i in range(20)))
    assert writes == [1, 19]  # not yet known to be busy: the first step went ahead of its turn's batch
    writes.clear()
    second = await asyncio.gather(*(store.apply(event(f"b{i}", Trigger.RINGING, f"b{i}:Ring")) for i in range(20)))
    assert writes == [20]
    assert {result.outcome for result in first + second} == {Outcome.APPLIED}
    assert await client.xlen(keys.transitions()) == 42
    await store.aclose()


async def test_unbatched_store_decides_the_same(redis_url: str, keys: Keys) -> None:
    """With batching off, each apply is its own script call, with the same outcomes."""
    client = aioredis.Redis.from_url(redis_url)
    store = CallStore(client, keys, batch=False)
    first = await store.apply(event("c", Trigger.RINGING, "c:Ring"))
    again = await store.apply(event("c", Trigger.RINGING, "c:Ring"))
    await client.aclose()
    assert (first.outcome, again.outcome) == (Outcome.APPLIED, Outcome.DUPLICATE)


async def test_unreachable_redis_fails_every_waiting_request() -> None:
    """A pipeline that cannot be sent fails every step queued in it with StoreUnavailable."""
    client = aioredis.Redis(port=free_port(), socket_connect_timeout=0.5)
    store = CallStore(client, Keys("cstest-down"))
    outcomes = await asyncio.gather(
        *(store.apply(event(f"c{index}", Trigger.RINGING, f"c{index}:Ring")) for index in range(20)),
        return_exceptions=True,
    )
    await client.aclose()
    assert all(isinstance(item, StoreUnavailable) for item in outcomes), outcomes


async def test_unreachable_redis_answers_503_to_every_concurrent_webhook(make_settings: MakeSettings) -> None:
    """Concurrent webhooks while Redis is down: every one gets 503 (so the provider retries), none a 2xx."""
    client = aioredis.Redis(port=free_port(), socket_connect_timeout=0.5)
    app = create_app(make_settings(), redis=client)
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        responses = await asyncio.gather(
            *(
                http.post(
                    "/webhooks/vobiz",
                    content=f"CallUUID=call-{index}&Event=Ring&CallStatus=ringing".encode(),
                    headers={"Content-Type": "application/x-www-form-urlencoded"},
                )
                for index in range(20)
            )
        )
    await client.aclose()
    assert [response.status_code for response in responses] == [503] * 20
    assert {response.json()["error"]["code"] for response in responses} == {"redis_unavailable"}


@pytest.mark.slow
async def test_steps_survive_a_flushed_script_cache(tmp_path: Path) -> None:
    """After Redis loses its scripts (restart, SCRIPT FLUSH) the next batch loads the script and succeeds."""
    server = EmbeddedRedis(tmp_path / "redis", appendonly=False)
    client = aioredis.Redis.from_url(server.start())
    try:
        store = CallStore(client, Keys("cstest-noscript"))
        await store.apply(event("c", Trigger.RINGING, "c:Ring"))
        await client.script_flush()
        results = await asyncio.gather(
            store.apply(event("c", Trigger.ANSWERED, "c:StartApp")), store.apply(event("d", Trigger.RINGING, "d:Ring"))
        )
        assert [(result.outcome, result.to_state) for result in results] == [
            (Outcome.APPLIED, "answered"),
            (Outcome.APPLIED, "ringing"),
        ]
    finally:
        await client.aclose()
        server.stop()
