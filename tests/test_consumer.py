"""The consumer-group library on a real Redis: typed transitions, acks, reclaims, a recreated group,
dead letters and graceful stop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from consumer import Consumer, ConsumerOptions, Transition
from consumer.deadletter import entries as dead_letters
from statemachine.events import CallEvent
from statemachine.keys import Keys
from statemachine.states import Trigger
from statemachine.store import CallStore

FAST = ConsumerOptions(block_ms=100, claim_idle_ms=300, claim_every_ms=50, max_deliveries=3)


def event(call_id: str, trigger: Trigger, dedupe: str) -> CallEvent:
    return CallEvent(
        source="pbx",
        provider="vobiz",
        call_id=call_id,
        event=trigger,
        provider_event=trigger.value.title(),
        provider_status=None,
        dedupe_key=dedupe,
        received_at="2026-05-29T12:00:00.000Z",
        from_number="14155551234",
    )


async def publish_call(store: CallStore, call_id: str) -> list[str]:
    """A call that rings, is answered and completes: three entries; returns their ids."""
    ids = []
    for trigger in (Trigger.RINGING, Trigger.ANSWERED, Trigger.COMPLETED):
        step = await store.apply(event(call_id, trigger, f"{call_id}:{trigger.value}"))
        assert step.entry_id is not None
        ids.append(step.entry_id)
    return ids


async def run_until(consumer: Consumer, done: Callable[[], Any], within: float = 10.0) -> None:
    """Run the consumer until ``done()`` is true (checked every 20 ms), then stop it gracefully."""
    task = asyncio.create_task(consumer.run())
    deadline = time.monotonic() + within
    try:
        while not await _maybe_await(done()):
            assert not task.done(), task.exception()
            assert time.monotonic() < deadline, "consumer did not get there in time"
            await asyncio.sleep(0.02)
    finally:
        consumer.stop()
        await asyncio.wait_for(task, timeout=5)


async def _maybe_await(value: Any) -> Any:
    return await value if asyncio.iscoroutine(value) else value


async def pending_count(async_redis: aioredis.Redis, stream: str, group: str) -> int:
    return int((await async_redis.xpending(stream, group))["pending"])


async def test_handler_gets_typed_transitions_then_they_are_acknowledged(
    async_redis: aioredis.Redis, store: CallStore, keys: Keys
) -> None:
    """Each entry arrives as a Transition with decoded fields and CallEvent; after the handler returns
    nothing is left pending."""
    ids = await publish_call(store, "call-1")
    seen: list[Transition] = []

    async def handle(transition: Transition) -> None:
        seen.append(transition)

    consumer = Consumer(async_redis, "billing", handle, keys=keys, name="w1", options=FAST)
    await run_until(consumer, lambda: len(seen) == 3)

    assert [t.entry_id for t in seen] == ids
    assert [(t.from_state, t.to_state, t.version) for t in seen] == [
        ("new", "ringing", 1),
        ("ringing", "answered", 2),
        ("answered", "completed", 3),
    ]
    first = seen[0]
    assert (first.stream, first.kind, first.source, first.provider, first.call_id) == (
        keys.transitions(),
        "transition",
        "pbx",
        "vobiz",
        "call-1",
    )
    assert (first.name, first.attempt, first.replay, first.deliveries) == ("ringing", 1, False, 1)
    assert isinstance(first.event, CallEvent)
    assert first.event.event is Trigger.RINGING
    assert (first.event.dedupe_key, first.event.from_number) == ("call-1:ringing", "14155551234")
    assert await pending_count(async_redis, keys.transitions(), "billing") == 0
    assert (await async_redis.xinfo_groups(keys.transitions()))[0]["last-delivered-id"].decode() == ids[-1]


async def test_plain_function_handler(async_redis: aioredis.Redis, store: CallStore, keys: Keys) -> None:
    """A synchronous handler works the same way."""
    ids = await publish_call(store, "call-sync")
    seen: list[str] = []
    consumer = Consumer(async_redis, "sync", lambda t: seen.append(t.entry_id), keys=keys, name="w1", options=FAST)
    await run_until(consumer, lambda: len(seen) == 3)
    assert seen == ids
    assert await pending_count(async_redis, keys.transitions(), "sync") == 0


async def test_crashed_consumers_entries_are_reclaimed_by_another_after_the_idle_time(
    async_redis: aioredis.Redis, store: CallStore, keys: Keys
) -> None:
    """Entries a consumer read but never acknowledged go to a peer once idle for claim_idle_ms, not before."""
    ids = await publish_call(store, "call-crash")
    stream = keys.transitions()
    await async_redis.xgroup_create(stream, "billing", id="0")
    await async_redis.xreadgroup("billing", "crashed", {stream: ">"}, count=10)  # then dies without XACK
    crashed_at = time.monotonic()
    handled: list[tuple[str, int, float]] = []

    def handle(transition: Transition) -> None:
        handled.append((transition.entry_id, transition.deliveries, time.monotonic() - crashed_at))

    consumer = Consumer(async_redis, "billing", handle, keys=keys, name="survivor", options=FAST)
    await run_until(consumer, lambda: len(handled) == 3)

    assert [entry_id for entry_id, _, _ in handled] == ids
    assert [deliveries for _, deliveries, _ in handled] == [2, 2, 2]
    assert min(elapsed for _, _, elapsed in handled) >= 0.3
    assert await pending_count(async_redis, stream, "billing") == 0


async def test_restarted_consumer_handles_its_own_pending_entries_first(
    async_redis: aioredis.Redis, store: CallStore, keys: Keys
) -> None:
    """Under the same name, a restarted consumer takes its pending entries back at once (no idle wait)."""
    ids = await publish_call(store, "call-restart")
    stream = keys.transitions()
    await async_redis.xgroup_create(stream, "billing", id="0")
    await async_redis.xreadgroup("billing", "worker-1", {stream: ">"}, count=2)
    handled: list[tuple[str, int]] = []
    slow_claims = ConsumerOptions(block_ms=100, claim_idle_ms=60_000)
    consumer = Consumer(
        async_redis, "billing", lambda t: handled.append((t.entry_id, t.deliveries)), keys=keys, name="worker-1",
        options=slow_claims,
    )  # fmt: skip
    started = time.monotonic()
    await run_until(consumer, lambda: len(handled) == 3)
    assert time.monotonic() - started < 5
    assert handled == [(ids[0], 2), (ids[1], 2), (ids[2], 1)]
    assert await pending_count(async_redis, stream, "billing") == 0


async def test_deleted_group_and_stream_are_recreated(
    async_redis: aioredis.Redis, store: CallStore, keys: Keys
) -> None:
    """After the stream and group vanish (Redis restarted without persistence), the consumer recreates
    the group and handles what is published next."""
    stream = keys.transitions()
    handled: list[str] = []
    consumer = Consumer(async_redis, "billing", lambda t: handled.append(t.call_id), keys=keys, name="w1", options=FAST)
    task = asyncio.create_task(consumer.run())
    try:
        await publish_call(store, "before")
        for _ in range(250):
            if len(handled) == 3:
                break
            await asyncio.sleep(0.02)
        await async_redis.delete(stream)
        await asyncio.sleep(0.2)
        await store.apply(event("after", Trigger.RINGING, "after:ringing"))
        for _ in range(250):
            if "after" in handled:
                break
            assert not task.done(), task.exception()
            await asyncio.sleep(0.02)
    finally:
        consumer.stop()
        await asyncio.wait_for(task, 5)
    assert handled == ["before", "before", "before", "after"]
    groups = await async_redis.xinfo_groups(stream)
    assert [(g["name"], g["pending"]) for g in groups] == [(b"billing", 0)]


async def test_destroyed_group_is_recreated(async_redis: aioredis.Redis, store: CallStore, keys: Keys) -> None:
    """XGROUP DESTROY under a running consumer: it recreates the group from the stream's start."""
    stream = keys.transitions()
    handled: list[str] = []
    consumer = Consumer(async_redis, "billing", lambda t: handled.append(t.call_id), keys=keys, name="w1", options=FAST)
    await consumer.ensure_groups()
    await async_redis.xgroup_destroy(stream, "billing")
    await publish_call(store, "c")
    await run_until(consumer, lambda: len(handled) == 3)
    assert handled == ["c", "c", "c"]


async def test_handler_that_always_fails_ends_in_the_dead_letter_stream(
    async_redis: aioredis.Redis, store: CallStore, keys: Keys
) -> None:
    """After max_deliveries failed deliveries the entry is dead-lettered with the error and acknowledged."""
    await store.apply(event("poison", Trigger.RINGING, "poison:ringing"))
    entry_id = (await async_redis.xrange(keys.transitions()))[0][0].decode()
    attempts: list[int] = []

    async def handle(transition: Transition) -> None:
        attempts.append(transition.deliveries)
        raise RuntimeError("billing system says no")

    consumer = Consumer(async_redis, "billing", handle, keys=keys, name="w1", options=FAST)
    await run_until(consumer, lambda: async_redis.xlen(keys.consumer_deadletter("billing")))

    assert attempts == [1, 2, 3]
    [dead] = await dead_letters(async_redis, keys, "billing")
    assert (dead.origin_stream, dead.origin_id, dead.group, dead.consumer, dead.deliveries) == (
        keys.transitions(),
        entry_id,
        "billing",
        "w1",
        3,
    )
    assert dead.error == "RuntimeError: billing system says no"
    assert (dead.fields["call_id"], dead.fields["to_state"]) == ("poison", "ringing")
    assert await pending_count(async_redis, keys.transitions(), "billing") == 0


async def test_undecodable_entry_is_dead_lettered_at_once_and_the_rest_flows(
    async_redis: aioredis.Redis, store: CallStore, keys: Keys
) -> None:
    """An entry without an event cannot become a Transition: it is set aside, the next one is handled."""
    stream = keys.transitions()
    bogus = (await async_redis.xadd(stream, {"kind": "transition", "call_id": "x"})).decode()
    good = await publish_call(store, "fine")
    handled: list[str] = []
    consumer = Consumer(
        async_redis, "billing", lambda t: handled.append(t.entry_id), keys=keys, name="w1", options=FAST
    )
    await run_until(consumer, lambda: len(handled) == 3)
    assert handled == good
    [dead] = await dead_letters(async_redis, keys, "billing")
    assert (dead.origin_id, dead.deliveries) == (bogus, 1)
    assert dead.error == f"entry {bogus} has no 'event' field"


async def test_entries_deleted_while_pending_are_acknowledged_not_handled(
    async_redis: aioredis.Redis, store: CallStore, keys: Keys
) -> None:
    """A pending entry trimmed or deleted from the stream is dropped from the pending list (6.2 and 7)."""
    ids = await publish_call(store, "trimmed")
    stream = keys.transitions()
    await async_redis.xgroup_create(stream, "billing", id="0")
    await async_redis.xreadgroup("billing", "crashed", {stream: ">"}, count=10)
    await async_redis.xdel(stream, ids[1])
    handled: list[str] = []
    consumer = Consumer(
        async_redis, "billing", lambda t: handled.append(t.entry_id), keys=keys, name="w1", options=FAST
    )
    await run_until(consumer, lambda: len(handled) == 2)
    for _ in range(50):
        if await pending_count(async_redis, stream, "billing") == 0:
            break
        await asyncio.sleep(0.02)
    assert handled == [ids[0], ids[2]]
    assert await pending_count(async_redis, stream, "billing") == 0


async def test_reads_several_streams(async_redis: aioredis.Redis, store: CallStore, keys: Keys) -> None:
    """One consumer serves a list of streams (one per partition) and says which each entry came from."""
    ids = await publish_call(store, "p0")
    [(_id, fields)] = await async_redis.xrange(keys.transitions(0), ids[0], ids[0])
    other = (await async_redis.xadd(keys.transitions(1), fields)).decode()
    handled: list[tuple[str, str]] = []
    consumer = Consumer(
        async_redis, "billing", lambda t: handled.append((t.stream, t.entry_id)), keys=keys,
        streams=[keys.transitions(0), keys.transitions(1)], name="w1", options=FAST,
    )  # fmt: skip
    await run_until(consumer, lambda: len(handled) == 4)
    assert sorted(handled) == sorted([(keys.transitions(0), i) for i in ids] + [(keys.transitions(1), other)])


async def test_stop_finishes_the_current_entry_and_leaves_the_rest_pending(
    async_redis: aioredis.Redis, store: CallStore, keys: Keys
) -> None:
    """stop() during a handler: that entry is acknowledged, unread ones stay pending under the name."""
    ids = await publish_call(store, "stopping")
    handled: list[str] = []
    consumer: Consumer

    async def handle(transition: Transition) -> None:
        consumer.stop()
        await asyncio.sleep(0.2)
        handled.append(transition.entry_id)

    consumer = Consumer(async_redis, "billing", handle, keys=keys, name="w1", options=FAST)
    await asyncio.wait_for(consumer.run(), 5)
    assert handled == [ids[0]]
    pending = await async_redis.xpending_range(keys.transitions(), "billing", "-", "+", 10)
    assert [(p["message_id"].decode(), p["consumer"]) for p in pending] == [(ids[1], b"w1"), (ids[2], b"w1")]


def test_invalid_options_are_refused() -> None:
    """Zero or negative limits are configuration mistakes, refused up front."""
    with pytest.raises(ValueError, match="max_deliveries must be positive"):
        ConsumerOptions(max_deliveries=0)


async def test_default_streams_are_every_partition(async_redis: aioredis.Redis, prefix: str) -> None:
    """With partitioned keys the consumer reads every partition's stream; each call's entries stay in order."""
    keys = Keys(prefix, 4)
    store = CallStore(async_redis, keys)
    calls = [f"call-{number}" for number in range(8)]
    for call_id in calls:
        await publish_call(store, call_id)
    handled: list[Transition] = []
    consumer = Consumer(async_redis, "billing", handled.append, keys=keys, name="w1", options=FAST)
    assert consumer.streams == [f"{prefix}:{{{p}}}:transitions" for p in range(4)]
    await run_until(consumer, lambda: len(handled) == 24)
    assert len({t.stream for t in handled}) > 1
    for call_id in calls:
        assert [t.to_state for t in handled if t.call_id == call_id] == ["ringing", "answered", "completed"]
