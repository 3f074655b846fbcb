"""The inTandem VoiceCall sink, consuming a real transitions stream and writing to a local stand-in of
inTandem's VoiceCall API that checks the documented request shape."""

from __future__ import annotations

import time
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis

from consumer import Consumer, ConsumerOptions
from receiver.settings import ConfigError
from sinks.intandem import IntandemConfig, IntandemSink
from statemachine.events import CallEvent
from statemachine.keys import Keys
from statemachine.states import Trigger
from statemachine.store import CallStore
from tests.support.provider_api import INTANDEM_PATH, ProviderApi

STAFF = "d290f1ee-6c54-4b01-90e6-d701748f0851"
CLIENT = "5a1c7d2e-0b7f-4d0e-9a57-3f1f0c9b8a11"
BUSINESS = "9b2f4e6a-1c3d-4e5f-8a7b-6c5d4e3f2a1b"


def sink_config(api: ProviderApi, **table: Any) -> IntandemConfig:
    return IntandemConfig.from_table(
        {
            "base_url": api.url,
            "token": "env:INTANDEM_TOKEN",
            "defaults": {"business_uid": BUSINESS},
            **table,
        },
        {"INTANDEM_TOKEN": api.credentials.intandem_token},
    )


async def publish(async_redis: aioredis.Redis, keys: Keys, call_id: str, trigger: Trigger, **extras: Any) -> None:
    """One MiniVoice-style callback for an inbound call whose custom variables name staff and client."""
    await CallStore(async_redis, keys).apply(
        CallEvent(
            source="mv",
            provider="minivoice",
            call_id=call_id,
            event=trigger,
            provider_event=f"call.{trigger.value}",
            provider_status=None,
            dedupe_key=f"{call_id}:{trigger.value}",
            received_at="2026-05-29T12:00:00.000Z",
            from_number="+14155550148",
            to_number="+14155550901",
            direction="inbound",
            extras={"variables": {"staff_uid": STAFF, "client_uid": CLIENT}, **extras},
        )
    )


async def drain(consumer: Consumer) -> None:
    """Hand the consumer everything pending or new, then return."""
    await consumer.recover_own()
    for stream in consumer.streams:
        while await consumer.read_new(stream):
            pass


def make_consumer(async_redis: aioredis.Redis, keys: Keys, config: IntandemConfig, name: str = "sink-1") -> Consumer:
    options = ConsumerOptions(block_ms=50, max_deliveries=2, retry_delay_ms=50)
    return Consumer(
        async_redis, config.group, IntandemSink(async_redis, keys, config), keys=keys, name=name, options=options
    )


async def test_answered_call_becomes_one_record_with_duration_and_price(
    api: ProviderApi, async_redis: aioredis.Redis, keys: Keys
) -> None:
    """ringing → answered → completed: one POST, then updates; the record ends answered, 42 s, "0.12"."""
    for trigger in (Trigger.RINGING, Trigger.ANSWERED):
        await publish(async_redis, keys, "call-1", trigger)
    await publish(async_redis, keys, "call-1", Trigger.COMPLETED, duration_s=42, price="0.12", rate="0.05")
    await drain(make_consumer(async_redis, keys, sink_config(api)))

    [create] = api.received("intandem.create")
    assert create.path == INTANDEM_PATH
    assert create.headers["authorization"] == "Bearer intandem-token"
    assert create.json == {
        "staff_uid": STAFF,
        "client_uid": CLIENT,
        "business_uid": BUSINESS,
        "from_number": "+14155550148",
        "to_number": "+14155550901",
        "direction": "INBOUND",
        "status": "INCOMING_CALL",
        "rate": "0",
        "provider": "VONAGE",
        "external_id": "call-1",
        "source_identifier": "mv",
    }
    updates = api.received("intandem.update")
    assert [u.json["status"] for u in updates] == ["ANSWERED_BY_STAFF", "ANSWERED_BY_STAFF"]
    [record] = api.intandem.values()
    assert (record["status"], record["duration"], record["price"], record["rate"]) == (
        "ANSWERED_BY_STAFF",
        42,
        "0.12",
        "0.05",
    )
    assert all(u.path == f"{INTANDEM_PATH}/{record['uid']}" for u in updates)


async def test_unanswered_call_is_missed(api: ProviderApi, async_redis: aioredis.Redis, keys: Keys) -> None:
    """ringing → no_answer: the record is MISSED."""
    await publish(async_redis, keys, "call-2", Trigger.RINGING)
    await publish(async_redis, keys, "call-2", Trigger.NO_ANSWER)
    await drain(make_consumer(async_redis, keys, sink_config(api)))
    [record] = api.intandem.values()
    assert record["status"] == "MISSED"


async def test_rate_limited_create_waits_as_told(api: ProviderApi, async_redis: aioredis.Redis, keys: Keys) -> None:
    """A 429 with ``Retry-After: 1`` is waited out, then the same record is created once."""
    api.script("intandem.create", 429, {"Retry-After": "1"}, {"success": False, "errors": ["rate limited"]})
    await publish(async_redis, keys, "call-3", Trigger.RINGING)
    started = time.monotonic()
    await drain(make_consumer(async_redis, keys, sink_config(api)))
    assert time.monotonic() - started >= 1.0
    assert len(api.received("intandem.create")) == 2
    assert len(api.intandem) == 1


async def test_unavailable_update_is_retried(api: ProviderApi, async_redis: aioredis.Redis, keys: Keys) -> None:
    """A 503 on an update is retried and the update lands."""
    await publish(async_redis, keys, "call-4", Trigger.RINGING)
    consumer = make_consumer(async_redis, keys, sink_config(api))
    await drain(consumer)
    api.script("intandem.update", 503, {}, {"success": False})
    await publish(async_redis, keys, "call-4", Trigger.ANSWERED)
    await drain(consumer)
    assert [u.json["status"] for u in api.received("intandem.update")] == ["ANSWERED_BY_STAFF"] * 2
    [record] = api.intandem.values()
    assert record["status"] == "ANSWERED_BY_STAFF"


async def test_restart_does_not_create_a_second_record(
    api: ProviderApi, async_redis: aioredis.Redis, keys: Keys, r: redis.Redis
) -> None:
    """A restarted sink, and even a fresh consumer group reading the stream from the start, update the
    record created before; they never create another."""
    await publish(async_redis, keys, "call-5", Trigger.RINGING)
    await drain(make_consumer(async_redis, keys, sink_config(api), name="before-restart"))
    await publish(async_redis, keys, "call-5", Trigger.ANSWERED)
    await drain(make_consumer(async_redis, keys, sink_config(api), name="after-restart"))
    await publish(async_redis, keys, "call-5", Trigger.BUSY)
    await drain(make_consumer(async_redis, keys, sink_config(api, group="rebuilt"), name="fresh-group"))
    assert len(api.received("intandem.create")) == 1
    [record] = api.intandem.values()
    assert record["status"] == "MISSED"
    assert r.hget(keys.sink_record("intandem", "call-5"), "uid") == record["uid"].encode()


async def test_call_without_staff_is_dead_lettered_without_a_request(
    api: ProviderApi, async_redis: aioredis.Redis, keys: Keys, r: redis.Redis
) -> None:
    """A call whose staff uid is nowhere (event, defaults) is never sent; it ends in the group's dead letters."""
    await CallStore(async_redis, keys).apply(
        CallEvent(
            source="mv",
            provider="minivoice",
            call_id="anonymous",
            event=Trigger.RINGING,
            provider_event="call.ringing",
            provider_status=None,
            dedupe_key="anonymous:ringing",
            received_at="2026-05-29T12:00:00.000Z",
            from_number="+14155550148",
            to_number="+14155550901",
        )
    )
    consumer = make_consumer(async_redis, keys, sink_config(api))
    await drain(consumer)
    await drain(consumer)
    assert api.requests == []
    [(_id, fields)] = r.xrange(keys.consumer_deadletter("intandem"))
    assert b"staff_uid, client_uid" in fields[b"error"]


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"base_url": "ftp://x", "token": "t"}, "sinks.intandem.base_url must be an http(s) URL"),
        ({"base_url": "http://x", "token": "env:NOPE"}, "sinks.intandem.token names environment variable NOPE"),
        ({"base_url": "http://x", "token": "t", "statuses": {"ringing": "ringing"}}, "ringing maps to 'ringing'"),
        ({"base_url": "http://x", "token": "t", "update_path": "/v"}, "update_path must contain"),
    ],
)
def test_configuration_errors_name_the_key(table: dict[str, Any], message: str) -> None:
    """A bad ``[sinks.intandem]`` table is refused with the key at fault."""
    with pytest.raises(ConfigError) as raised:
        IntandemConfig.from_table(table, {})
    assert message in str(raised.value)
